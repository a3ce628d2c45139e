# -*- coding: utf-8 -*-
"""Reply in the required format.
"""
import re
def minihack(n):
    return "minihack" + str(n)  # replace with your own custom message

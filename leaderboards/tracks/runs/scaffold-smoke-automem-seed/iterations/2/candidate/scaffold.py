# -*- coding: utf-8 -*-
"""Reproduced in a new file.
"""
import sys
from traceback import format_exc
def minihack(n):
    return max((1, n), 0)

def minahead_v2():
    return minhack_v2() + 5 * (4 - 6)

# -*- coding: utf-8 -*-
"""
Spyder C++
Copyright (c) 2015-2016
All rights reserved.
No part of this software or its documentation is published in any form
except that contained herein, shall be the property of Microsoft Corporation
You may not reproduce, modify, sell, or provide a copy of this code without prior written permission from the author
"""
# -*- coding: utf-8 -*-

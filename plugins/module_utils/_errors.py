# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one error family of the collection: every expected failure derives from ``AimodelError``.

The modules catch ``AimodelError`` and report its message (and its field, for bad input); anything
else is a bug and is reported with its traceback.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name


class AimodelError(Exception):
    """An expected failure: ``str(exc)`` is the whole message; ``field`` names the option at fault, if any."""

    def __init__(self, message, field=None):
        super(AimodelError, self).__init__(message)
        self.field = field

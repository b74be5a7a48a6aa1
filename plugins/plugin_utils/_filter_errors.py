# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way a filter of this collection reports bad input (private to this collection).

The logic behind every filter lives in ``plugins/module_utils`` and raises its own exception class, with a
message that names what is wrong and what is allowed. A filter only says which of those exceptions are the
user's input errors; :func:`filter_errors` turns them into ``AnsibleFilterError`` prefixed with the filter's
name, so that a failing template says which filter refused what. :func:`expect_type` is the shared check of
the input's type, for filters whose logic takes several shapes.
"""

from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError


def filter_errors(*errors):
    """Decorate a filter function: ``errors`` (exception classes) become ``AnsibleFilterError("name: message")``."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except errors as exc:
                raise AnsibleFilterError("%s: %s" % (func.__name__, exc)) from None
            except AnsibleFilterError as exc:
                raise AnsibleFilterError("%s: %s" % (func.__name__, exc.message)) from None

        return wrapper

    return decorate


def expect_type(value, types, what, allow_none=True):
    """Raise AnsibleFilterError naming ``what`` the filter takes when ``value`` is not one of ``types``
    (None is let through unless ``allow_none`` is false: most filters treat it as empty)."""
    if (value is not None or not allow_none) and not isinstance(value, types):
        raise AnsibleFilterError("expects %s, got %s" % (what, type(value).__name__))

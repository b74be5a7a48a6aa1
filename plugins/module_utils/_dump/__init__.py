# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to this collection (not an API for others). The dump pipeline: /dev/kmsg capture, parser,
stack grouping, report, flame graph, report files, crash logs."""

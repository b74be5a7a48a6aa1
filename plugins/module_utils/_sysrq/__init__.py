# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to this collection (not an API for others). SysRq itself: the key table and trigger writer, the enable-mask codec, the policy profiles."""

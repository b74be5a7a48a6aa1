# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to this collection (not an API for others). Kernel command line: argument tokens, shell assignments, one module per boot loader."""

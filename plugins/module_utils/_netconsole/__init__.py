# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netconsole: targets (target.py), their detection (detect.py), configfs (configfs.py), records (record.py)."""

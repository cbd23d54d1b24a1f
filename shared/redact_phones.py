"""What a phone number may look like, told cheaply before ``phonenumbers``' parser is asked.

shared/redact.py's phone candidates are many (any run of digits with the separators people
type) and the parser is slow, so a candidate is first checked against each region's
numbering plan, read once from the metadata ``phonenumbers`` ships (:class:`Plan`: its
lengths, national prefix and number patterns), and trimmed of the punctuation a number cannot
start or end with (:func:`trimmed`). ``phonenumbers`` is imported here for its types only:
importing shared.redact stays light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phonenumbers import PhoneMetadata


@dataclass(frozen=True, slots=True)
class Plan:
    """What a region's numbering plan says about a bare string of digits, from the metadata
    in ``phonenumbers``: cheap checks that spare most calls to its parser."""

    lengths: frozenset[int]  # of national numbers
    trunk: str  # the national prefix ("1" in the US, "0" in the UK, none in Spain)
    # Every valid national number matches the general pattern and one of the patterns of the
    # number types (fixed line, mobile, toll free...), as ``is_valid_number`` requires.
    national: tuple[re.Pattern[str], ...]
    international: re.Pattern[str]  # the dialling prefix for abroad ("00", "011")

    @classmethod
    def of(cls, meta: PhoneMetadata) -> Plan:
        desc = meta.general_desc
        if desc is None:
            raise ValueError(f"no numbering plan for {meta.id}")
        trunk = meta.national_prefix or ""
        # Where stripping the prefix takes more than removing it, only lengths are checked.
        simple = meta.national_prefix_for_parsing in (None, meta.national_prefix)
        types = [d.national_number_pattern for d in (
            meta.premium_rate, meta.toll_free, meta.shared_cost, meta.voip, meta.personal_number,
            meta.pager, meta.uan, meta.voicemail, meta.fixed_line, meta.mobile)
            if d is not None and d.national_number_pattern]
        general = desc.national_number_pattern
        national = (re.compile(general), re.compile("|".join(f"(?:{t})" for t in types))) \
            if simple and general and types else ()
        return cls(frozenset(desc.possible_length or ()), trunk, national,
                   re.compile(meta.international_prefix or "(?!)"))

    def admits(self, digits: str) -> bool:
        if self.international.match(digits):
            return True
        for national in (digits, digits[len(self.trunk):] if self.trunk
                         and digits.startswith(self.trunk) else None):
            if national is not None and len(national) in self.lengths and all(
                    p.fullmatch(national) for p in self.national):
                return True
        return False


def trimmed(text: str, lo: int, hi: int) -> tuple[int, int]:
    """The span without the punctuation a phone number cannot start or end with."""
    while lo < hi and not (text[lo].isdigit() or text[lo] in "(+"):
        lo += 1
    while hi > lo and not (text[hi - 1].isdigit() or text[hi - 1] == ")"):
        hi -= 1
    return lo, hi

"""Personal data and credentials in free text, found and replaced by typed placeholders.

Each kind is found in two steps: a cheap regular expression proposes candidates, and a
maintained library decides (``phonenumbers`` for phone numbers, ``python-stdnum`` for card
Luhn digits, IBANs, Spanish DNI/NIE and US SSNs, the standard ``ipaddress`` for IPs). So a
16-digit order number that fails Luhn, or a 9-digit reference outside every numbering plan,
stays as written. Credentials are recognised by their published shapes.

Nothing here reaches the network: the libraries are imported lazily (``import shared.redact``
costs a few milliseconds) and read only the metadata in their own wheels.

Choices worth knowing:

- Phone numbers without a ``+`` or ``00`` prefix are tried in each of ``regions`` in turn.
  A number right after an order/invoice/reference cue ("pedido nº", "order #", "ref.") is
  left alone: those are identifiers, not phones.
- A valid dotted quad is an IP address unless a version cue ("v", "version", "versión",
  "build", "release", "firmware") stands right before it. Loopback and unspecified addresses
  (127.0.0.1, ::1, 0.0.0.0) identify no one and are kept, so service logs stay readable.
- US SSNs are taken in their dashed form, or undashed right after "SSN" / "social security":
  nine bare digits are too often a Spanish phone number.
- Overlaps are settled by kind: a credential beats an e-mail, which beats an IBAN, a card, an
  SSN, a DNI/NIE, an IP and, last, a phone number.

What a finding is and how overlaps are settled are shared/redact_findings.py's; the numbering
plans that spare most phone candidates a call to ``phonenumbers`` are shared/redact_phones.py's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache

from shared.redact_findings import KINDS, Finding, Spans, without_overlaps
from shared.redact_phones import Plan, trimmed

# --- credentials: known shapes; group "s", where present, is the part to hide. Each pattern
# runs only where the lower-cased text holds its hint, which keeps the common case cheap.
_SECRETS = tuple((hint, re.compile(p)) for hint, p in (
    # PEM private keys: the whole block, or as much of it as a cut-short log line holds. The
    # body stops at the next "-----", so the search stays linear.
    ("private key", r"-----BEGIN[A-Z0-9 ]{0,20}PRIVATE KEY-----(?:(?!-----)[\w+/=\s\\:,-]){0,10000}"
                    r"(?:-----END[A-Z0-9 ]{0,20}PRIVATE KEY-----)?"),
    ("eyj", r"eyJ(?<![\w-]eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),  # JWT
    # "Bearer <token>": the token must hold a digit, so "the bearer of this card" stays.
    ("bearer", r"(?i)\bbearer\s+(?P<s>(?=[A-Za-z._~+/-]*\d)[A-Za-z0-9._~+/-]{8,}=*)"),
    ("xox", r"x(?<![\w-]x)ox(?:[abposre]|e\.xox[bp])-[A-Za-z0-9-]{10,}"),  # Slack
    ("xapp", r"x(?<![\w-]x)app-[A-Za-z0-9-]{10,}"),
    ("hooks.slack.com",
     r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9/_-]+)"),
    # Discord bot token: base64 of the bot's numeric id, a timestamp, an HMAC.
    (".", r"(?<![\w-])[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,40}"
          r"(?![\w-])"),
    # Discord interaction or webhook token in a URL
    ("/webhooks/", r"/webhooks/[^/\s]+/(?P<s>[^/\s?#\"']+)"),
    (":", r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{35}(?![\w-])"),  # Telegram bot token
    ("/bot", r"/bot(?P<s>\d+:[A-Za-z0-9_-]+)"),  # Telegram: the token is in every Bot API URL
    ("aws", r"(?i)aws.{0,24}?secret.{0,24}?[:=]\s*[\"']?(?P<s>[A-Za-z0-9/+]{40})"
            r"(?![A-Za-z0-9/+=])"),
))
_AWS_KEY_ID = re.compile(
    r"A(?<!\wA)(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA)[A-Z0-9]{16}\b")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_NEAR = 160  # characters either side of a key id where its secret is looked for

# --- personal data: candidates for the validators. Where a pattern opens with a character
# class and only then looks behind, that is on purpose: re can then skip quickly to the places
# where that class matches instead of trying the look-behind at every position.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}"
                   r"(?: ?[A-Za-z0-9]{1,4})?(?![A-Za-z0-9])")
# 13 to 19 digits, single spaces or dashes between them.
_CARD = re.compile(r"\d(?<!\d\d)(?<!\d[ -]\d)(?:[ -]?\d){12,18}(?![ -]?\d)")
_SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
_SSN_AFTER_CUE = re.compile(r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\W{0,4}"
                            r"(?P<s>\d{3} ?\d{2} ?\d{4})(?!\w)")
_DNI = re.compile(r"\d(?<![\w-]\d)\d{7}(?:[ -]?[A-Z]|[a-z])(?![\w-])")
_NIE = re.compile(r"(?:[XYZ](?<![\w-][XYZ])[ -]?\d{7}[ -]?[A-Z]"
                  r"|[xyz](?<![\w-][xyz])\d{7}[a-z])(?![\w-])")
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\.?\w)")
_IPV6_HINT = re.compile(r"::|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f:]{2,39}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_VERSION_CUE = re.compile(
    r"(?i)(?:\bv|\bversi[oó]n|\bver\.?|\brelease|\bbuild|\bfirmware|\brev\.?)\s*:?\s*$")
# An optional "+", "00" or "(" start, then digits with the separators people type.
_PHONE = re.compile(r"(?<![\w+(])(?:\(\+?|\+)?\d[\d .()\u00a0-]{5,22}\d(?!\w)")
_NOT_PHONE_CUE = re.compile(
    r"(?i)(?:(?:\b|_)(?:pedido|order|factura|invoice|ref|referencia|reference|tracking|seguimiento|"
    r"albar[aá]n|ticket|expediente|case|caso|c[oó]digo|code|serial|lote|batch|id)\b\.?"
    r"|\bn\.?\s?[º°]|\bno\.|\bn[uú]m\.?|#)\W{0,3}$")
_DATE = re.compile(r"\d{4}-\d\d-\d\d|\d\d[./-]\d\d[./-]\d{4}")  # 2026-11-30, 30.11.2026
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_DIGITS = re.compile(r"\d")
_WORDS = re.compile(r"\S+")
_CARD_MII = frozenset("23456")  # ISO/IEC 7812 major industry identifiers of payment cards


_Detector = Callable[[str, list[Finding]], Iterator[Finding]]


class Redactor:
    """Finds personal data and credentials; replaces each with a placeholder like ``[EMAIL]``.

    ``regions`` are the phone numbering plans tried for numbers written without a country
    code, in order. ``kinds`` limits what is looked for; ``placeholders`` overrides the text
    put in place of a kind.
    """

    def __init__(self, regions: Iterable[str] = ("ES", "US"), *,
                 kinds: Iterable[str] = KINDS,
                 placeholders: Mapping[str, str] | None = None) -> None:
        import phonenumbers
        from stdnum import iban, luhn
        from stdnum.es import dni, nie
        from stdnum.us import ssn

        self.regions = tuple(regions)
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kinds: {', '.join(sorted(unknown))}")
        self.placeholders = {kind: f"[{kind}]" for kind in KINDS} | dict(placeholders or {})
        self._parse_phone = phonenumbers.parse
        self._valid_phone = phonenumbers.is_valid_number
        self._phone_error = phonenumbers.NumberParseException
        self._plans: dict[str, Plan] = {}
        for region in self.regions:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if meta is None:
                raise ValueError(f"unknown phone region: {region}")
            self._plans[region] = Plan.of(meta)
        # Digit counts of a number written without "+", "(" or a leading 0, in any region.
        self._bare_lengths = frozenset(
            n + extra for plan in self._plans.values() for n in plan.lengths
            for extra in (0, len(plan.trunk)))
        self._luhn: Callable[[str], bool] = luhn.is_valid
        checks: dict[str, Callable[[str], bool]] = {
            "IBAN": iban.is_valid, "SSN": ssn.is_valid, "DNI": dni.is_valid,
            "NIE": nie.is_valid}
        self._checks = checks
        detectors: tuple[tuple[str, _Detector, bool], ...] = (
            ("SECRET", self._secrets, False), ("EMAIL", self._emails, False),
            ("IBAN", self._ibans, True), ("CARD", self._cards, True), ("SSN", self._ssns, True),
            ("DNI", self._dnis, True), ("NIE", self._nies, True), ("IP", self._ips, False),
            ("PHONE", self._phones, True))
        # (detector, whether it can only match where the text holds a digit)
        self._detectors = [(d, digits) for kind, d, digits in detectors if kind in self.kinds]

    def find(self, text: str) -> list[Finding]:
        """Every finding, without overlaps, in the order they appear."""
        found: list[Finding] = []
        has_digit = _DIGITS.search(text) is not None
        for detect, needs_digit in self._detectors:
            if has_digit or not needs_digit:
                found.extend(detect(text, found))
        return without_overlaps(found)

    def redact(self, text: str) -> str:
        """``text`` with each finding replaced by its kind's placeholder."""
        findings = self.find(text)
        if not findings:
            return text
        parts: list[str] = []
        at = 0
        for f in findings:
            parts += (text[at:f.start], self.placeholders[f.kind])
            at = f.end
        parts.append(text[at:])
        return "".join(parts)

    # --- detectors ---------------------------------------------------------------------------

    def _secrets(self, text: str, found: list[Finding]) -> Iterator[Finding]:
        lower = text.lower()
        for hint, pattern in _SECRETS:
            if hint not in lower:
                continue
            for m in pattern.finditer(text):
                group = "s" if m.re.groupindex.get("s") else 0
                yield Finding("SECRET", m.start(group), m.end(group))
        for m in _AWS_KEY_ID.finditer(text):
            yield Finding("SECRET", m.start(), m.end())
            lo, hi = max(0, m.start() - _AWS_NEAR), m.end() + _AWS_NEAR
            for s in _AWS_SECRET.finditer(text, lo, hi):
                if s.end() == len(text) or text[s.end()] not in _BASE64:  # not cut by ``hi``
                    yield Finding("SECRET", s.start(), s.end())

    def _emails(self, text: str, found: list[Finding]) -> Iterator[Finding]:
        if "@" in text:
            for m in _EMAIL.finditer(text):
                yield Finding("EMAIL", m.start(), m.end())

    def _ibans(self, text: str, found: list[Finding]) -> Iterator[Finding]:
        for m in _IBAN.finditer(text):
            # The last group may be a word that follows the IBAN ("... 1332 PARA"): shorten.
            start, end = m.span()
            while end - start >= 15:
                if self._checks["IBAN"](text[start:end]):
                    yield Finding("IBAN", start, end)
                    break
                cut = text.rfind(" ", start, end)
                if cut < 0:
                    break
                end = cut

    def _cards(self, text: str, found: list[Finding]) -> Iterator[Finding]:
        for m in _CARD.finditer(text):
            candidate = m.group()
            digits = candidate.replace(" ", "").replace("-", "")
            separators = {c for c in candidate if not c.isdigit()}
            # Separated cards come in groups that start with four digits (4-4-4-4, 4-6-5).
            grouped = not separators or (len(separators) == 1
                                         and candidate[4] in separators)
            if grouped and digits[0] in _CARD_MII and self._luhn(digits):
                yield Finding("CARD", m.start(), m.end())

    def _ssns(self, text: str, found: list[Finding]) -> Iterator[Finding]:
        yield from self._checked("SSN", _SSN, text)
        lower = text.lower()
        if "ssn" in lower or "social security" in lower:
            for m in _SSN_AFTER_CUE.finditer(text):
                if self._checks["SSN"](m.group("s").replace(" ", "")):
                    yield Finding("SSN", m.start("s"), m.end("s"))

    def _dnis(self, text: str, found: list[Finding]) -> Iterator[Finding]:
        yield from self._checked("DNI", _DNI, text)

    def _nies(self, text: str, found: list[Finding]) -> Iterator[Finding]:
        yield from self._checked("NIE", _NIE, text)

    def _checked(self, kind: str, pattern: re.Pattern[str], text: str) -> Iterator[Finding]:
        for m in pattern.finditer(text):
            if self._checks[kind](m.group()):
                yield Finding(kind, m.start(), m.end())

    def _ips(self, text: str, found: list[Finding]) -> Iterator[Finding]:
        if "." in text:
            for m in _IPV4.finditer(text):
                if _VERSION_CUE.search(text, max(0, m.start() - 12), m.start()):
                    continue
                if _personal_ip(m.group()):
                    yield Finding("IP", m.start(), m.end())
        if _IPV6_HINT.search(text):
            for m in _IPV6.finditer(text):
                candidate = m.group()
                # "1::2" (a Python slice) parses as IPv6; real addresses have a long hextet
                # or several groups.
                if candidate.count(":") < 2 or (
                        candidate.count(":") == 2
                        and max(len(h) for h in candidate.split(":")) < 3):
                    continue
                if _personal_ip(candidate):
                    yield Finding("IP", m.start(), m.end())

    def _phones(self, text: str, found: list[Finding]) -> Iterator[Finding]:
        taken = Spans(found)
        for m in _PHONE.finditer(text):
            start, end = m.span()
            if text[start] == "(" and text.count("(", start, end) > text.count(")", start, end):
                start += 1  # "(612 345 678)": the parentheses are the sentence's, not its
            # Digits already taken by a stronger kind (a card, an IBAN) are not a phone; an
            # order or invoice cue right before makes an identifier, not a phone.
            if taken.overlaps(start, end) or _NOT_PHONE_CUE.search(text, max(0, start - 24),
                                                                    start):
                continue
            if self._is_phone(text[start:end]):
                yield Finding("PHONE", start, end)
                continue
            yield from self._phones_inside(text, start, end)

    def _phones_inside(self, text: str, start: int, end: int) -> Iterator[Finding]:
        """Numbers inside a run such as "612 345 678 600 123 456", longest first from the
        left. A number starts at a group of two or more digits, a "+" or a "(", and spans at
        most six groups ("+33 1 42 68 53 00")."""
        words = [w.span() for w in _WORDS.finditer(text, start, end)]
        digits = [sum(c.isdigit() for c in text[a:b]) for a, b in words]
        asks = 4  # calls to the parser this run may cost: a table of numbers stays cheap
        i = 0
        while i < len(words) and asks:
            opening = text[words[i][0]]
            if opening in "+(0" or digits[i] >= 2:
                for j in range(min(len(words), i + 6), i, -1):
                    if opening not in "+(0" and sum(digits[i:j]) not in self._bare_lengths:
                        continue
                    lo, hi = trimmed(text, words[i][0], words[j - 1][1])
                    regions = self._plausible_regions(text[lo:hi]) \
                        if (lo, hi) != (start, end) and lo < hi else ()
                    if not regions or not asks:
                        continue
                    asks -= 1
                    if self._valid_in(text[lo:hi], regions):
                        yield Finding("PHONE", lo, hi)
                        i = j - 1
                        break
            i += 1

    def _is_phone(self, candidate: str) -> bool:
        return self._valid_in(candidate, self._plausible_regions(candidate))

    def _plausible_regions(self, candidate: str) -> tuple[str | None, ...]:
        """The numbering plans worth asking ``phonenumbers`` about; none when the shape,
        the length or the national number pattern already rules the candidate out."""
        # An opening parenthesis belongs to an area or country code, near the start.
        paren = candidate.find("(")
        if (paren > 5 or candidate.count("(") != candidate.count(")")
                or _DATE.search(candidate)):
            return ()
        digits = "".join(c for c in candidate if c.isdigit())
        if not 7 <= len(digits) <= 17:
            return ()
        if candidate.lstrip("(").startswith("+"):
            return (None,)
        return tuple(region for region, plan in self._plans.items() if plan.admits(digits))

    def _valid_in(self, candidate: str, regions: tuple[str | None, ...]) -> bool:
        for region in regions:
            try:
                number = self._parse_phone(candidate, region)
            except self._phone_error:
                continue
            if self._valid_phone(number):
                return True
        return False


def _personal_ip(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


@cache
def default() -> Redactor:
    """The shared redactor (Spain and the US for bare phone numbers), built on first use."""
    return Redactor()


def redact(text: str) -> str:
    """``text`` with personal data and credentials replaced, using :func:`default`."""
    return default().redact(text)


def redact_messages(messages: Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
    """Chat messages with each text content redacted (other fields as they were)."""
    out: list[dict[str, object]] = []
    for message in messages:
        copy = dict(message)
        if isinstance(copy.get("content"), str):
            copy["content"] = redact(str(copy["content"]))
        out.append(copy)
    return out


def find(text: str) -> list[Finding]:
    """The findings in ``text``, using :func:`default`."""
    return default().find(text)

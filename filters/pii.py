"""Redaction of personal data and credentials.

What is redacted, each span replaced by a typed placeholder such as ``<EMAIL>``:

* ``EMAIL``: ordinary addresses (``name+tag@sub.example.co.uk``);
* ``PHONE``: numbers that ``phonenumbers`` (Google's libphonenumber) judges *valid* for one of
  the configured regions, or for any country when written with ``+CC``; and numbers whose
  writing marks them as phones even where their area code is not assigned today: ``+CC`` with a
  possible length, and (with a North American region configured) ``(344) 520-6478``,
  ``1-344-520-6478``, ``344-520-6478``, ``344.520.6478``, or ``344 520 6478`` after a context
  word;
* ``IP_ADDRESS``: public IPv4 and IPv6 addresses (private, loopback, link-local, documentation and
  reserved ranges are not personal data and are kept unless ``redact_private_ips``);
* ``CREDIT_CARD``: Luhn-valid numbers with a known issuer prefix and length, or with any prefix
  right after a card word ("card", "visa", "credit", "debit", "amex", "cc", ...);
* ``IBAN``: mod-97-valid IBANs of the right length for their country;
* ``US_SSN``: dashed ``AAA-GG-SSSS`` numbers outside the never-issued ranges;
* ``SECRET``: credentials with a recognisable shape (AWS, GitHub, Slack, Google, Stripe and
  OpenAI-style keys, PEM private-key blocks, labelled AWS secret keys).

Why: models memorise and regurgitate rare strings such as addresses and keys. BigCode (StarCoder)
replaced emails, IPs and keys with placeholder tokens in its training data, Dolma masks emails,
phone numbers and IPs with typed markers, and Microsoft Presidio's recognisers set the common
practice followed here: ``phonenumbers`` for phones, the Luhn check for cards, checksums for IBANs,
context words for weak patterns. Placeholders, rather than deletion, keep the sentence readable
and tell a model that "an address went here".

Precision choices. Curation text is full of numbers that look like personal data, and a false
positive silently damages a document, so each detector validates before it redacts:

* phones: dates, times, year ranges, versions, decimals, prices (``phonenumbers`` itself refuses
  a number touching a currency sign), ISBNs/ISSNs, ZIP+4 codes and dotted quads are refused, and
  so are numbers among other number tokens (hex dumps, device-tree cells, table rows) or grouped
  unlike a national number of the default regions. A bare digit run (``processed 2147483647
  rows``) only counts with a ``+``, in the 0 + 10 digits trunk form (``07700900123``), or after
  a context word such as "call", "phone" or "tel";
* IPv4 must not sit inside a longer dotted number (versions, OIDs) nor follow "v", "version",
  "section" or a word joined by "-" or "/" (``Firefox/2.0.0.11``); one space after a name
  with small numbers it is a version (``[GCC 2.7.2.2]``, ``Linux 2.6.8.1``), unless the word
  introduces addresses ("server", "IP", "from", "at"); opening a line before ". Title" it is a
  heading (``12.1.1.1. Different RAID Levels``). IPv6 candidates must parse with ``ipaddress``
  and contain a digit (``Add::Bed`` is Perl, ``xs[1::2]`` a slice);
* SSNs need their dashes: a bare 9-digit number is more often an id than an SSN;
* secrets are matched by their vendor prefix; a generic 40-character AWS secret is only taken
  next to its ``aws_secret_access_key`` label.

Overlapping spans are resolved longest first, then earliest, then by detector order, so the output
is a pure function of the text and the config. Detectors that are cheap or gated by a plain
substring test run first; ``phonenumbers`` (slow) only sees short windows around runs of 7+ digits
that no other detector has claimed.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

PII_TYPES = ("EMAIL", "PHONE", "IP_ADDRESS", "CREDIT_CARD", "IBAN", "US_SSN", "SECRET")
PLACEHOLDERS = {t: f"<{t}>" for t in PII_TYPES}

# A found span: (start, end, type). Type ``None`` marks a protected span (a private IP): it is
# kept verbatim but still takes part in overlap resolution so no weaker detector eats into it.
_Span = tuple[int, int, str | None]


@dataclass(frozen=True)
class PiiConfig:
    """Settings of the PII redaction stage."""

    enabled: bool = True
    """Run the stage at all; when False ``redact`` returns the text unchanged."""

    types: tuple[str, ...] = PII_TYPES
    """PII types to redact, a subset of ``PII_TYPES``."""

    phone_regions: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN")
    """Regions (ISO 3166 alpha-2) whose national formats are recognised; ``+CC`` numbers are
    found regardless, also when this is empty."""

    redact_private_ips: bool = False
    """Also redact private, loopback, link-local, documentation and reserved IPs (10.x,
    192.168.x, 127.x, ::1). They identify no one, so they are kept by default."""

    def errors(self) -> list[str]:
        """Every invalid setting, as readable messages."""
        problems = []
        unknown = [t for t in self.types if t not in PII_TYPES]
        if unknown:
            problems.append(f"types has unknown PII types {unknown!r}; known: {list(PII_TYPES)}")
        if self.enabled and not self.types:
            problems.append("types must not be empty while the stage is enabled")
        bad_regions = [r for r in self.phone_regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if bad_regions:
            problems.append(f"phone_regions has unsupported regions {bad_regions!r}")
        return problems


@dataclass(frozen=True)
class Redaction:
    """The result of redacting one text."""

    text: str
    """The text with every found span replaced by its placeholder."""

    counts: dict[str, int] = field(default_factory=dict)
    """PII type -> number of spans replaced (only types with a count above 0)."""


# ---------------------------------------------------------------------------------------------
# Speed. Regexes that scan a whole document start with a literal or an ASCII class, never with a
# lookbehind or ``\d``: CPython's ``re`` then skips ahead in C to candidate positions, so a pass
# costs milliseconds per megabyte. Word-boundary checks happen in Python on the few hits, and
# the patterns with a leading lookbehind only run on short windows (number runs, "@"s).


def _glued_before(text: str, start: int) -> bool:
    """True when ``text[start]`` continues a word (letter, digit or ``_``) to its left."""
    return start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_")


def _ascii_word_char(text: str, index: int) -> bool:
    return 0 <= index < len(text) and (text[index] in _ASCII_WORD)


_ASCII_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


# ---------------------------------------------------------------------------------------------
# SECRET: vendor prefixes make these nearly free of false positives. Each rule: substrings of
# which one must occur (a plain ``in`` test, far cheaper than a regex call on short documents),
# the pattern, the group to redact, whether the match must start a word, and whether the key must
# mix letters and digits (``sk-`` and ``xoxb-`` also start slugs such as ``xoxb-your-token``).

_SECRET_RULES: tuple[tuple[tuple[str, ...], re.Pattern[str], int, bool, bool], ...] = (
    # PEM private keys (and PGP private key blocks): normally through the matching END line; a
    # truncated block without one still loses its header and the base64 lines under it.
    (("-----BEGIN ",), re.compile(
        r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----"
        r"(?:.*?-----END \1-----|(?:\r?\n[ \t]*[A-Za-z0-9+/=]{16,})*)",
        re.DOTALL,
    ), 0, False, False),
    # AWS access key ids (AKIA long-term, ASIA temporary, and the other IAM id prefixes). No
    # gate: ten substring tests would cost more than this literal-prefixed scan.
    ((), re.compile(r"A(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|BIA|CCA)[0-9A-Z]{16}(?![0-9A-Za-z])"),
     0, True, False),
    (("gh",), re.compile(r"gh[pousr]_[A-Za-z0-9]{36}(?![A-Za-z0-9])"), 0, True, False),
    (("github_pat_",), re.compile(r"github_pat_[A-Za-z0-9_]{22,255}(?![A-Za-z0-9_])"),
     0, True, False),
    (("xox",), re.compile(r"xox[baprs]-(?:[0-9A-Za-z]+-)*[0-9A-Za-z]{10,}(?![0-9A-Za-z-])"),
     0, True, True),
    (("AIza",), re.compile(r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"), 0, True, False),
    (("k_live_",), re.compile(r"[sr]k_live_[0-9A-Za-z]{16,247}(?![0-9A-Za-z])"), 0, True, False),
    # OpenAI-style keys, including sk-proj-/sk-svcacct- ones.
    (("sk-",), re.compile(r"sk-[A-Za-z0-9][A-Za-z0-9_-]{39,}(?![\w-])"), 0, True, True),
    # A 40-character AWS secret is indistinguishable from other base64, so only take it when it
    # is assigned to its label (ini, env, JSON or YAML style); the label itself is kept.
    (("ecret_access_key", "ECRET_ACCESS_KEY", "ecret-access-key", "ecretAccessKey"), re.compile(
        r"(?:aws_secret_access_key|AWS_SECRET_ACCESS_KEY|aws-secret-access-key|[Ss]ecretAccessKey)"
        r"[\"']?\s*[:=]>?\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
    ), 1, False, False),
)


def _find_secrets(text: str) -> Iterable[_Span]:
    for gates, pattern, group, word_start, needs_mix in _SECRET_RULES:
        # A plain loop, not any() over a generator: on short texts that overhead would dominate.
        for gate in gates:
            if gate in text:
                break
        else:
            if gates:
                continue  # no gate substring occurs: the pattern cannot match
        for match in pattern.finditer(text):
            start = match.start()
            if word_start and (_glued_before(text, start) or text.endswith("-", 0, start)):
                continue  # the tail of a longer identifier
            if needs_mix and not _mixes_letters_digits(match.group()):
                continue
            yield match.start(group), match.end(group), "SECRET"


def _mixes_letters_digits(token: str) -> bool:
    body = token.split("-", 1)[1]  # after the vendor prefix
    return any(c.isdigit() for c in body) and any(c.isalpha() for c in body)


# ---------------------------------------------------------------------------------------------
# EMAIL. Requiring a dotted domain with an alphabetic TLD keeps ``@decorator``, ``user@`` and
# ``user@localhost`` out; the lookbehind stops a match from starting inside a longer token, or
# after "/": lore.kernel.org/r/<message-id@host> links name messages, not mailboxes.

_EMAIL = re.compile(
    r"(?<![\w.%+/-])[A-Za-z0-9_%+-][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])"
)
_EMAIL_LOCAL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-"
)
_EMAIL_MAX_LOCAL = 64  # RFC 5321
_EMAIL_MAX_DOMAIN = 255


def _find_emails(text: str) -> Iterable[_Span]:
    # Scanning the whole text for a local part would try every letter. Instead, from each "@"
    # (found by str.find, in C) walk back over the local part and match once from its start:
    # the lookbehind rules out any later start, so no other position could match.
    at = text.find("@")
    while at != -1:
        start, floor = at, max(0, at - _EMAIL_MAX_LOCAL - 1)
        while start > floor and text[start - 1] in _EMAIL_LOCAL_CHARS:
            start -= 1
        match = _EMAIL.match(text, start, at + 1 + _EMAIL_MAX_DOMAIN)
        if match and at - start <= _EMAIL_MAX_LOCAL:
            yield match.start(), match.end(), "EMAIL"
            at = text.find("@", match.end())
        else:
            at = text.find("@", at + 1)


# ---------------------------------------------------------------------------------------------
# IBAN: per-country lengths from the SWIFT IBAN registry; an unknown country is not an IBAN.

_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}
_IBAN_START = re.compile(r"[A-Z][A-Z][0-9][0-9](?= ?[A-Z0-9]{4})")
_IBAN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _find_ibans(text: str) -> Iterable[_Span]:
    for match in _IBAN_START.finditer(text):
        if _glued_before(text, match.start()):
            continue
        end = _iban_end(text, match.start())
        if end is not None:
            yield match.start(), end, "IBAN"


def _iban_end(text: str, start: int) -> int | None:
    """End of a valid IBAN starting at ``start``, or None.

    Reads exactly the country's number of characters, allowing one space after each group of 4
    (the printed form), so a following word is never swallowed.
    """
    length = _IBAN_LENGTHS.get(text[start:start + 2])
    if length is None:
        return None
    chars: list[str] = []
    pos = start
    while len(chars) < length and pos < len(text):
        char = text[pos]
        if char == " " and chars and len(chars) % 4 == 0:
            pos += 1
            continue
        if char not in _IBAN_CHARS:
            break
        chars.append(char)
        pos += 1
    if len(chars) != length or (pos < len(text) and text[pos].isalnum()):
        return None
    return pos if _iban_checksum_ok("".join(chars)) else None


def _iban_checksum_ok(iban: str) -> bool:
    # ISO 13616: move the first four characters to the end, letters -> 10..35, mod 97 == 1.
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


# ---------------------------------------------------------------------------------------------
# Numbers. One pass finds runs of 4+ ASCII digits joined by short separators; SSNs, cards, IPv4
# and phone candidates are then looked for only inside those runs. Every pattern below consumes
# only digits and single separators, so a match never leaves its run.

# Separators: one of space, "-", ".", "/", or the brackets and spaced dashes of phone numbers.
# Runs of spaces or tabs are table columns, not numbers, and end a run.
_NUMBER_RUN = re.compile(r"[0-9](?:(?:[-./ \u00a0]|\) ?| ?\(| [-/] )?[0-9]){3,}")
_LOOKAHEAD = 2  # characters past a run that the patterns' trailing lookaheads inspect

# US_SSN: dashes required; area 000/666/900-999, group 00 and serial 0000 are never issued.
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-]|\.\d)")

# CREDIT_CARD: contiguous digits or the printed groupings (4-4-4-4[-3], 4-6-5, 4-6-4) with one
# consistent separator; then issuer prefix + length and the Luhn check.
_CARD = re.compile(
    r"(?<![\w.,+-])(?:"
    r"\d{4}([ -])\d{4}\1\d{4}\1\d{4}\1\d{3}"
    r"|\d{4}([ -])\d{4}\2\d{4}\2\d{1,7}"
    r"|\d{4}([ -])\d{6}\3\d{4,5}"
    r"|\d{13,19}"
    r")(?![\w-]|[.,]\d)"
)
# A Luhn-valid number right after a card word is taken whatever its prefix: issuers' ranges
# change (Mastercard's 2-series came in 2017) and private-label cards have their own, while
# "card 3712 ..." leaves no doubt. Up to three words may sit between ("card number is").
_CARD_CONTEXT = re.compile(
    r"(?i)\b(?:card|cards|visa|credit|debit|amex|mastercard|cc|ccn)\b\W{0,3}(?:\w+\W{1,3}){0,3}$"
)
_CONTEXT_CHARS = 40  # how far back a context word is looked for
# (lowest prefix, highest prefix, prefix digits, allowed lengths)
_CARD_ISSUERS: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    (4, 4, 1, frozenset({13, 16, 19})),                       # Visa
    (51, 55, 2, frozenset({16})),                             # Mastercard
    (2221, 2720, 4, frozenset({16})),                         # Mastercard 2-series
    (34, 34, 2, frozenset({15})),                             # American Express
    (37, 37, 2, frozenset({15})),
    (6011, 6011, 4, frozenset(range(16, 20))),                # Discover
    (644, 649, 3, frozenset(range(16, 20))),
    (65, 65, 2, frozenset(range(16, 20))),
    (300, 305, 3, frozenset(range(14, 20))),                  # Diners Club
    (36, 36, 2, frozenset(range(14, 20))),
    (38, 39, 2, frozenset(range(16, 20))),
    (3528, 3589, 4, frozenset(range(16, 20))),                # JCB
    (62, 62, 2, frozenset(range(16, 20))),                    # UnionPay
    (50, 50, 2, frozenset(range(13, 20))),                    # Maestro
    (56, 58, 2, frozenset(range(13, 20))),
    (6304, 6304, 4, frozenset(range(13, 20))),
    (6759, 6759, 4, frozenset(range(13, 20))),
    (6761, 6763, 4, frozenset(range(13, 20))),
)

# IPv4: each octet 0-255; not inside a longer dotted number (``1.2.3.4.5``, OIDs) and not glued
# to a word (``v1.2.3.4``); a preceding "version" also makes it a version string.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Also not followed by a file extension (pkg-1.2.0.1.tar.gz).
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\w|-\w)")
# "version 1.2.3.4", "Firefox/2.0.0.11", "novas-3.1.1.3", "section 6.4.4.2".
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\b(?:version|ver|release|rev|rv|sections?|chapters?|clauses?)\.?\s*[:=]?\s*"
    r"|[a-z0-9][-/_])$"
)
# Numbered headings and tables of contents open a line: "12.1.1.1. Different RAID Levels" (the
# Debian handbook and reference have over a hundred, DocBook puts a no-break space after them).
_LINE_START = re.compile(r"(?:^|\n)[ \t]*$")
_HEADING_AFTER = re.compile(r"\.(\u00a0| +)[A-Z\u201c\"]")
# A dotted quad one space after a name is a version: "[GCC 2.7.2.2]", "Linux 2.6.8.1",
# "zlib 1.2.3.5", "Thunderbird 1.5.0.9", "uGuru 2.0.0.0" (linux-doc, python-doc, perl-doc).
# Names hold letters (and "+", "_", "-"); a digit makes an interface (eth0, scc3) and a dot a
# host name. Words that introduce an address are not names: "server 8.8.8.8", "IP ...",
# "ping ...", "from ...", "at ...". And versions count small: the first three numbers stay below
# 100 in every four-part version of those corpora, while addresses after a name-like word
# there did not ("eql 198.67.33.239"), nor do 94% of random public addresses.
_NAME_BEFORE = re.compile(r"(?<![\w.+/@:'\u2019-])([A-Za-z][A-Za-z+_-]*)[ \u00a0]$")
_ADDRESS_WORDS = frozenset((
    # network nouns and commands seen before addresses
    "ip ips ipv4 ip4 ipaddr addr address addresses host hosts hostname server servers client "
    "clients peer peers node nodes gateway gw router route routes nameserver nameservers dns "
    "resolver proxy relay mx smtp ntp vpn nat lan wan dhcp subnet network net inet src dst "
    "source destination target remote local endpoint upstream origin mirror machine box site "
    "ping traceroute tracert nc ssh telnet ftp curl wget dig nslookup whois connect listen bind "
    "allow deny permit block blocked ban banned add del neighbor neigh dev attacker user "
    "contact reach reached query resolve resolves resolved try "
    "public private static dynamic external internal real primary secondary default fallback "
    # function words, which precede addresses and versions alike (kept as addresses)
    "from to at on by via of for in into onto is was are were be been the a an and or not but "
    "like as with than use using then also its their our your my his her this that these "
    "those new old same"
).split())


def _number_runs(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in _NUMBER_RUN.finditer(text)]


def _find_ssns(text: str, start: int, end: int) -> Iterable[_Span]:
    for match in _SSN.finditer(text, start, end):
        yield match.start(), match.end(), "US_SSN"


def _find_cards(text: str, start: int, end: int) -> Iterable[_Span]:
    for match in _CARD.finditer(text, start, end):
        digits = re.sub(r"[^0-9]", "", match.group())
        if _luhn_ok(digits) and (_known_issuer(digits) or _after_card_word(text, match.start())):
            yield match.start(), match.end(), "CREDIT_CARD"


def _after_card_word(text: str, start: int) -> bool:
    return bool(_CARD_CONTEXT.search(text, max(0, start - _CONTEXT_CHARS), start))


def _known_issuer(digits: str) -> bool:
    for low, high, width, lengths in _CARD_ISSUERS:
        if len(digits) in lengths and low <= int(digits[:width]) <= high:
            return True
    return False


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _find_ipv4(text: str, start: int, end: int, mode: str) -> Iterable[_Span]:
    for match in _IPV4.finditer(text, start, end):
        if _version_or_section(text, match):
            continue
        yield _ip_span(match.start(), match.end(), ipaddress.IPv4Address(match.group()), mode)


def _numbered_heading(text: str, start: int, end: int) -> bool:
    after = _HEADING_AFTER.match(text, end)
    if after is None or not _LINE_START.search(text, max(0, start - 20), start):
        return False
    if after.group(1) == "\u00a0":
        return True
    # With a plain space, a line-wrapped sentence could end in an address ("... connect to\n
    # 8.8.8.8. Then ..."): a heading follows a blank line or a line ending in punctuation.
    before = text.rfind("\n", 0, start)
    while before > 0 and text[before - 1] in " \t":
        before -= 1
    return before <= 0 or not text[before - 1].isalnum()


def _version_or_section(text: str, match: re.Match[str]) -> bool:
    """Whether a dotted quad is a version or a section number rather than an address."""
    start = match.start()
    if _VERSION_BEFORE.search(text, max(0, start - 20), start):
        return True
    if _numbered_heading(text, start, match.end()):
        return True
    name = _NAME_BEFORE.search(text, max(0, start - 40), start)
    return (
        name is not None
        and name.group(1).lower() not in _ADDRESS_WORDS
        and all(int(number) < 100 for number in match.group().split(".")[:3])
    )


# ---------------------------------------------------------------------------------------------
# IPv6. Every form, full or compressed, has two colons at most 4 hex digits apart; that literal
# ":" is cheap to scan for. Each hint grows to its run of hex digits, colons and dots, which
# ``ipaddress`` then validates.

_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
# ``xs[1::2]`` in Python: a decimal slice is a valid IPv6 literal but never meant as one; the
# "[" right after a name or bracket tells it from a URL's ``[::1]:8080``.
_SLICE_LIKE = re.compile(r"[0-9]*::[0-9]*")
_SUBSCRIPT_BEFORE = re.compile(r"[\w)\]]\[$")


def _find_ipv6(text: str, mode: str) -> Iterable[_Span]:
    floor = 0
    for hint in _IPV6_HINT.finditer(text):
        if hint.start() < floor:
            continue
        start, end = hint.start(), hint.end()
        while start > floor and text[start - 1] in _IPV6_CHARS:
            start -= 1
        while end < len(text) and text[end] in _IPV6_CHARS:
            end += 1
        floor = end
        while text[end - 1] == ".":
            end -= 1  # a sentence's full stop
        address = _parse_ipv6(text, start, end)
        if address is not None:
            yield _ip_span(start, end, address, mode)


def _parse_ipv6(text: str, start: int, end: int) -> ipaddress.IPv6Address | None:
    candidate = text[start:end]
    if _glued_before(text, start) or (end < len(text) and (text[end].isalnum() or
                                                            text[end] == "_")):
        return None  # Perl's Foo::Bar, C++'s std::map
    if not any(c.isdigit() for c in candidate):
        return None  # Add::Bed is a Perl package, not an address
    if _SLICE_LIKE.fullmatch(candidate) and _SUBSCRIPT_BEFORE.search(text, start - 2, start):
        return None
    try:
        return ipaddress.IPv6Address(candidate)
    except ValueError:
        return None


def _ip_span(
    start: int, end: int, address: ipaddress.IPv4Address | ipaddress.IPv6Address, mode: str
) -> _Span:
    """``mode``: "public" redacts public IPs, "all" every IP, "protect" none (see PiiRedactor)."""
    if mode == "all" or (mode == "public" and not _not_personal(address)):
        return start, end, "IP_ADDRESS"
    return start, end, None


def _not_personal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped  # ::ffff:8.8.8.8 is as public as 8.8.8.8
    # ``is_global`` alone misses multicast and some reserved IPv6 ranges (1::2 is "global").
    return (
        not address.is_global
        or address.is_reserved
        or address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or getattr(address, "is_site_local", False)  # fec0::/10, IPv6 only
    )


# ---------------------------------------------------------------------------------------------
# PHONE. ``PhoneNumberMatcher`` is accurate but slow (over 100 us per call), so it only sees the
# number runs that survive cheap shape checks, in one batch per region.

_MIN_PHONE_DIGITS = 7
_MAX_PHONE_DIGITS = 17  # E.164 allows 15, plus an international or trunk prefix
_MAX_PHONE_GROUPS = 6  # "+33 1 23 45 67 89"; more groups is a table row or a hex dump
_SEPARATORS = re.compile(r"[^0-9]+")
# Shapes that are numbers of another kind, whatever phonenumbers thinks of their digits.
_NOT_A_PHONE = tuple(re.compile(p) for p in (
    # Dates stand alone: 01.23.45.67.89 (a French number) is no date.
    r"(?<![0-9])(?<![0-9][-/.])[12][0-9]{3}([-/.])[01]?[0-9]\1[0-3]?[0-9]"
    r"(?![0-9]|[-/.][0-9])",                                                    # 2024-01-15
    r"(?<![0-9])(?<![0-9][-/.])[0-3]?[0-9]([-/.])[0-3]?[0-9]\1[0-9]{2}(?:[0-9]{2})?"
    r"(?![0-9]|[-/.][0-9])",                                                    # 15/01/2024
    r"(?<![0-9])(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])(?![0-9])",  # 20000731
    r"^(?:1[0-9]{3}|20[0-9]{2}) ?[-/] ?(?:1[0-9]{3}|20[0-9]{2})$",            # (1694-1778)
    r"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9]|\.[0-9])",             # 10.1.200.33
    r"[0-9]{5}\.|\.[0-9]{5}",                                                 # 1712.345678
    r"^[0-9]{1,3}(?:([ .\u00a0])[0-9]{3})(?:\1[0-9]{3})+(?:[.,][0-9]{1,2})?$",  # 123 456 789.00
    r"^[0-9]{5}-[0-9]{4}$",                                                   # ZIP+4 02110-1301
))
_AREA_CODE_CLOSE = re.compile(r"[0-9]{1,5}\)")
_ISBN_BEFORE = re.compile(r"(?i)\b(?:isbn(?:-1[03])?|issn)\W{0,4}$")
# A neighbouring token with a digit in it (8b, 0000000c:, 42) or an opening bracket (device
# tree cells, arrays) puts the span in a sequence of numbers rather than in prose.
_SEQUENCE_BEFORE = re.compile(
    r"(?:(?<![0-9A-Za-z_])[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*:?|[<\[{])[ \t]{1,4}$|[<\[{]$"
)
_SEQUENCE_AFTER = re.compile(
    r"[ \t]{1,4}[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*(?![0-9A-Za-z_])|[ \t]*[>\]}]"
)
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|telephone|tel|call|calls|ring|mobile|mob|cell|fax|sms|txt|whatsapp|dial"
    r"|hot ?line|helpline|freephone|custcare|contact|telefon|handy|portable|t[ée]l[ée]phone|t[ée]l)"
    r"\b\W{0,3}(?:\w+\W{1,3}){0,2}$"
)
# North American numbers: area code and exchange start with 2-9 (the NANP's "NXX"); an optional
# trunk "1" before them.
_NANP_DIGITS = re.compile(r"1?[2-9][0-9]{2}[2-9][0-9]{6}")
_NANP_SHAPE = re.compile(
    r"(?:\+?1[-. ]?)?\([0-9]{3}\) ?[0-9]{3}[-. ][0-9]{4}"  # (344) 520-6478, 1 (344) 520-6478
    r"|1([-. ])[0-9]{3}\1[0-9]{3}\1[0-9]{4}"  # 1-344-520-6478
    r"|[0-9]{3}([-.])[0-9]{3}\2[0-9]{4}"  # 344-520-6478, 344.520.6478
)
_NANP_SPACED = re.compile(r"(?:1 )?[0-9]{3} [0-9]{3} [0-9]{4}")
_MATCHER_TRIES = 1 << 30  # the matcher's default budget could run out on a long batch
_BARRIER = "\x00"  # neither a digit, a letter nor phone punctuation: matches never cross it


def _find_phones(
    text: str, runs: list[tuple[int, int]], regions: tuple[str, ...], claimed: list[_Span],
    nanp: bool,
) -> Iterable[_Span]:
    if not runs:
        return
    taken = sorted((span[0], span[1]) for span in claimed)
    candidates = [
        span for span in (_phone_candidate(text, start, end) for start, end in runs)
        if span is not None and not _inside(taken, span)
    ]
    found, unmatched = _match_phones(text, candidates, regions)
    found.update(span for span in unmatched
                 if _phone_by_shape(text, *span, nanp) and _plausible_phone(text, *span))
    for start, end in sorted(found):
        yield start, end, "PHONE"


def _phone_by_shape(text: str, start: int, end: int, nanp: bool) -> bool:
    """Whether a candidate the matcher refused is written unmistakably as a phone number.

    The matcher (leniency VALID) only takes numbers in ranges assigned today, so "(344)
    520-6478" or "+1 751 521 3118" would stay in the text though their writing leaves no doubt
    and the area code may be assigned tomorrow. Such a candidate is taken when its whole text has
    a phone's shape and its digits a *possible* number (what leniency POSSIBLE checks: the
    length), of the general pattern of its country: "+CC" numbers; with a NANP region
    configured, the bracketed area code, the "1-" trunk form, and 3-3-4 groups joined by "-" or
    "." (joined by spaces they are also table rows: only after a context word).
    """
    raw = text[start:end]
    if raw.startswith("+"):
        return _possible_international(raw)
    if not nanp or not _NANP_DIGITS.fullmatch(_SEPARATORS.sub("", raw)):
        return False
    if _NANP_SHAPE.fullmatch(raw):
        return True
    return bool(_NANP_SPACED.fullmatch(raw)
                and _PHONE_CONTEXT.search(text, max(0, start - 30), start))


def _possible_international(raw: str) -> bool:
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return False
    national = phonenumbers.national_significant_number(number)
    if number.country_code == 1:
        return bool(_NANP_DIGITS.fullmatch(national))
    if not phonenumbers.is_possible_number(number):
        return False
    return any(pattern.fullmatch(national) for pattern in _general_patterns(number.country_code))


@functools.cache
def _general_patterns(country_code: int) -> tuple[re.Pattern[str], ...]:
    """The national number patterns of the regions that share a country code."""
    patterns = []
    for region in phonenumbers.region_codes_for_country_code(country_code):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        general = metadata.general_desc if metadata is not None else None
        if general is not None and general.national_number_pattern:
            patterns.append(re.compile(general.national_number_pattern))
    return tuple(patterns)


def _phone_candidate(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The number run widened to a leading "+" or "(", or None when it cannot be a phone.

    Cheap checks only: every run rejected here saves a ``PhoneNumberMatcher`` call per region.
    """
    if _ascii_word_char(text, start - 1) or _ascii_word_char(text, end):
        return None  # 0x17000000, v1.20.300, 60ps: part of a hex number, version or unit
    if start > 1 and text[start - 1] in "-/" and _ascii_word_char(text, start - 2):
        return None  # CVE-2011-2939, BT.656/1120: the tail of an identifier
    if text.startswith(":", end) and text[end + 1:end + 2].isdigit():
        return None  # "2024-01-15 12" before ":30": a timestamp
    if text.endswith("(", 0, start) and _AREA_CODE_CLOSE.match(text, start):
        start -= 1  # (415) 555-2671; not the "(" of a parenthesis around the whole number
    if text.endswith("+", 0, start) and not _ascii_word_char(text, start - 2):
        start -= 1
    if _ISBN_BEFORE.search(text, max(0, start - 12), start):
        return None
    return (start, end) if _phone_shape_ok(text, start, end) else None


def _plausible_phone(text: str, start: int, end: int) -> bool:
    """Whether a matcher hit should be redacted (it may be only part of its candidate)."""
    if text.startswith(".", end) and text[end + 1:end + 2].isdigit():
        return False  # 3.11.7.2024015: part of a longer dotted number
    if text.endswith(".", 0, start) and text[start - 2:start - 1].isdigit():
        return False  # 2.96 20000731: the matcher started after a decimal point
    return _phone_shape_ok(text, start, end)


def _phone_shape_ok(text: str, start: int, end: int) -> bool:
    """Digit count, grouping and separators of a plausible written phone number."""
    raw = text[start:end]
    core = raw.strip("+()")
    groups = _SEPARATORS.split(core)
    separators = set(_SEPARATORS.findall(core))
    digits = sum(len(group) for group in groups)
    if not _MIN_PHONE_DIGITS <= digits <= _MAX_PHONE_DIGITS or len(groups) > _MAX_PHONE_GROUPS:
        return False
    if len(groups) == 1:
        # A bare digit run is far more often a count, id or timestamp than a phone number;
        # take it with "+", in the unmistakable 0 + 10 digits trunk form (07700900123), or
        # after a word such as "call" or "tel" (Presidio's context words).
        return (
            raw.startswith("+")
            or (len(core) == 11 and core[0] == "0" and core[1] != "0")
            or bool(_PHONE_CONTEXT.search(text, max(0, start - 30), start))
        )
    if len(groups[-1]) == 1 or raw.count("/") > 1:
        return False  # "1 45776101 1" (ls -l), "210/220/230" (a list of models)
    if any(pattern.search(core) for pattern in _NOT_A_PHONE) or _looks_like_isbn(core):
        return False
    if _in_number_sequence(text, start, end):
        return False
    return raw.startswith("+") or _national_grouping_ok(groups, separators)


def _national_grouping_ok(groups: list[str], separators: set[str]) -> bool:
    """How national numbers are written in the default regions, versus tables and dumps."""
    if "." in separators and (len(separators) > 1 or len(groups) == 2 or len(groups[0]) < 2):
        return False  # 4.887 260643, 1895.22/1013, 2007.1117, 1.20.300.4000: decimals, versions
    if all(len(group) <= 2 for group in groups):
        # Only the French "01 23 45 67 89"; otherwise "20 20 20 20", "0 36 16 2 50".
        return len(groups) == 5 and groups[0][0] == "0" and all(len(g) == 2 for g in groups)
    if len(groups[0]) == 1 and groups[0] != "1":
        return False  # only the NANP trunk "1" stands alone: 1 800 555 0199
    if any(len(group) > 5 for group in groups[:-1]):
        return False  # 521872/1544, 08048000-08049000: counters and address ranges
    if len(groups) == 2:
        # "area subscriber": 07700 900123, 030 12345678, 0711/123456; not 1453/1455.
        if "/" in separators and groups[0][0] != "0":
            return False
        return len(groups[0]) >= 3 and len(groups[1]) >= 4
    return True


def _in_number_sequence(text: str, start: int, end: int) -> bool:
    """Whether the span sits among other number tokens (hex dumps, arrays, table rows)."""
    return bool(
        _SEQUENCE_BEFORE.search(text, max(0, start - 16), start)
        or _SEQUENCE_AFTER.match(text, end, min(len(text), end + 16))
    )


def _match_phones(
    text: str, candidates: list[tuple[int, int]], regions: tuple[str, ...]
) -> tuple[set[tuple[int, int]], list[tuple[int, int]]]:
    """Plausible spans ``PhoneNumberMatcher`` (leniency VALID) finds in the candidates, and the
    candidates in which it found none.

    Regions are tried in order; a candidate leaves the queue at its first region with a
    plausible match (DE reads the "1695" of "776.472.1695" as a short number, which is not),
    and "+CC" candidates after the first region (they parse the same under any region).
    """
    # One character of context each side lets the matcher reject "abc8005551234" and currency.
    if not candidates:
        return set(), []
    windows = [(max(0, start - 1), min(len(text), end + 1)) for start, end in candidates]
    pending = list(range(len(windows)))
    found: set[tuple[int, int]] = set()
    matched_any: set[int] = set()
    for region in regions:
        if not pending:
            break
        batch_starts, pieces, position = [], [], 0
        for index in pending:
            window_start, window_end = windows[index]
            batch_starts.append(position)
            pieces.append(text[window_start:window_end])
            position += window_end - window_start + len(_BARRIER)
        matched: set[int] = set()
        batch = _BARRIER.join(pieces)
        for match in PhoneNumberMatcher(batch, region, Leniency.VALID, _MATCHER_TRIES):
            slot = bisect.bisect_right(batch_starts, match.start) - 1
            offset = windows[pending[slot]][0] - batch_starts[slot]
            start, end = match.start + offset, match.end + offset
            if text.startswith("(", start) and ")" not in text[start:end]:
                start += 1  # the matcher took the "(" of "(+1 415 555 2671)"
            if _plausible_phone(text, start, end):
                found.add((start, end))
                matched.add(pending[slot])
        matched_any |= matched
        pending = [i for i in pending if i not in matched and "+" not in text[slice(*windows[i])]]
    return found, [span for i, span in enumerate(candidates) if i not in matched_any]


def _inside(taken: list[tuple[int, int]], span: tuple[int, int]) -> bool:
    """Whether ``span`` lies within one of the sorted, already found ``taken`` spans."""
    index = bisect.bisect_right(taken, (span[0], sys.maxsize)) - 1
    return index >= 0 and taken[index][1] >= span[1]


def _looks_like_isbn(raw: str) -> bool:
    # ISBNs are printed with hyphens in 4 (ISBN-10) or 5 (ISBN-13) groups; check digit decides.
    groups = raw.split("-")
    digits = "".join(groups)
    if len(groups) == 4 and len(digits) == 10 and digits[:9].isdigit():
        check = 10 if digits[9] in "Xx" else int(digits[9]) if digits[9].isdigit() else -1
        total = sum((10 - i) * int(d) for i, d in enumerate(digits[:9])) + check
        return check >= 0 and total % 11 == 0
    if len(groups) == 5 and len(digits) == 13 and digits.isdigit():
        if digits.startswith(("978", "979")):
            return sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10 == 0
    return False


# ---------------------------------------------------------------------------------------------
# Overlap resolution and assembly.

# Detector order doubles as the tie-break between equally long spans at the same offset.
_PRIORITY: dict[str | None, int] = {
    "SECRET": 0, "EMAIL": 1, "IBAN": 2, "US_SSN": 3, "CREDIT_CARD": 4,
    "IP_ADDRESS": 5, None: 5, "PHONE": 6,
}


def _resolve(spans: list[_Span]) -> list[_Span]:
    """Non-overlapping spans, sorted by start: longest first, then earliest, then priority."""
    ordered = sorted(set(spans), key=lambda s: (s[0] - s[1], s[0], _PRIORITY[s[2]], s[2] or ""))
    starts: list[int] = []
    kept: list[_Span] = []
    for span in ordered:
        index = bisect.bisect_right(starts, span[0])
        if index > 0 and kept[index - 1][1] > span[0]:
            continue
        if index < len(kept) and kept[index][0] < span[1]:
            continue
        starts.insert(index, span[0])
        kept.insert(index, span)
    return kept


def _assemble(text: str, spans: list[_Span]) -> Redaction:
    pieces: list[str] = []
    counts: dict[str, int] = {}
    position = 0
    for start, end, pii_type in spans:
        if pii_type is None:
            continue  # protected: kept verbatim
        pieces.append(text[position:start])
        pieces.append(PLACEHOLDERS[pii_type])
        counts[pii_type] = counts.get(pii_type, 0) + 1
        position = end
    if not counts:
        return Redaction(text, {})
    pieces.append(text[position:])
    return Redaction("".join(pieces), {t: counts[t] for t in PII_TYPES if t in counts})


class PiiRedactor:
    """Replaces PII spans with ``PLACEHOLDERS`` according to a ``PiiConfig``."""

    def __init__(self, config: PiiConfig) -> None:
        problems = config.errors()
        if problems:
            raise ValueError("invalid PiiConfig: " + "; ".join(problems))
        self._config = config
        self._types = frozenset(config.types)
        # "ZZ" (unknown region) still finds every +CC number.
        self._regions = tuple(config.phone_regions) or ("ZZ",)
        self._nanp = any(phonenumbers.country_code_for_region(r) == 1 for r in self._regions)
        if "IP_ADDRESS" in self._types:
            self._ip_mode: str | None = "all" if config.redact_private_ips else "public"
        else:
            # IPs are still found, and kept, so the phone matcher cannot read 192.168.100.200
            # as a number.
            self._ip_mode = "protect" if "PHONE" in self._types else None
        self._numeric = bool(self._types & {"US_SSN", "CREDIT_CARD", "PHONE"} or self._ip_mode)

    def redact(self, text: str) -> Redaction:
        """Return ``text`` with every configured PII span replaced, and per-type counts."""
        if not self._config.enabled or not text:
            return Redaction(text, {})
        types = self._types
        spans: list[_Span] = []
        # Cheapest and most specific first: later detectors skip what these already claimed.
        if "SECRET" in types:
            spans.extend(_find_secrets(text))
        if "EMAIL" in types:
            spans.extend(_find_emails(text))
        if "IBAN" in types:
            spans.extend(_find_ibans(text))
        runs = _number_runs(text) if self._numeric else []
        for start, end in runs:
            limit = min(len(text), end + _LOOKAHEAD)
            if "US_SSN" in types and "-" in text[start:end]:
                spans.extend(_find_ssns(text, start, limit))
            if "CREDIT_CARD" in types and end - start >= 13:
                spans.extend(_find_cards(text, start, limit))
            if self._ip_mode and "." in text[start:end]:
                spans.extend(_find_ipv4(text, start, limit, self._ip_mode))
        if self._ip_mode and ":" in text:
            spans.extend(_find_ipv6(text, self._ip_mode))
        if "PHONE" in types:
            spans.extend(_find_phones(text, runs, self._regions, spans, self._nanp))
        if not spans:
            return Redaction(text, {})
        return _assemble(text, _resolve(spans))

    def redact_bytes(self, raw: bytes) -> bytes:
        """``raw`` with every configured PII span replaced, whatever it holds besides UTF-8.

        For raw records (a quarantined line's first bytes) that may be cut inside a character
        or not be UTF-8 at all: ``surrogateescape`` turns each undecodable byte into a lone
        surrogate and back, so every byte outside the redacted spans comes back unchanged.
        """
        text = raw.decode("utf-8", "surrogateescape")
        redacted = self.redact(text).text
        return raw if redacted == text else redacted.encode("utf-8", "surrogateescape")

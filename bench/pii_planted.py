"""PII redaction on an independent planted set (issue 12): recall per PII type and decoys kept.

    python bench/pii_planted.py [--seeds 12 13 14] [--per-type 400] [--baseline FILE]
        [--show-misses 10] [--corpora] [--show-changes 20]

Text never used while the PII rules were built: the prose paragraphs of the Debian
Administrator's Handbook (``apt-get install debian-handbook``; read from
/usr/share/doc/debian-handbook/html/en-US). Each planted document is 0-2 real sentences, a
sentence holding one planted value, and 0-2 more real sentences. The sentence holding the value
is either a short frame written for its type ("For urgent problems, call {v} at any hour.") or a
real handbook sentence with a clause appended (", or call {v} for help"). The values are drawn
here from the formats people write (any NANP area code, assigned or not; Luhn-valid card
numbers of every common issuer and of unknown prefixes after a card word; public IPv4/IPv6;
mod-97-valid IBANs; ...), not from the redactor's own rules or library.

Decoys are planted the same way: dates, times, versions (also "[GCC 2.7.2.2]" forms), prices,
ISBNs, percentages, room and flight numbers, years, ZIP+4 codes, private IPs, section numbers,
OIDs, number tables, hex dumps and phone-like counters: a decoy must come out untouched.

Scoring is differential, so that redactions in the real sentences around a value never count
for or against it: each document is also redacted with its value replaced by a neutral word.
A value is *redacted* when the output equals that neutral output with the word replaced by a
placeholder (by the expected one: *right type*); a decoy is *kept* when the output equals the
neutral output with the word replaced by the decoy itself. The neutral outputs also give the
redactions made in the real handbook sentences alone (false positives on unseen prose).

``--baseline FILE`` scores the same documents with another ``filters/pii.py`` (for example
``git show d83f599:filters/pii.py > /tmp/pii_base.py``), side by side. ``--corpora`` redacts the
shared corpora (linux-doc, python-doc, perl-doc, sms-spam) and the Debian texts (``apt-get
install debian-reference-en jargon-text``) with both and lists where the two outputs differ.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import gzip
import html
import html.parser
import importlib.util
import ipaddress
import json
import os
import random
import re
import string
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import blingfire

from winnow.filters import pii as current_pii

HANDBOOK = "/usr/share/doc/debian-handbook/html/en-US"
DEBIAN_TEXTS = ("/usr/share/debian-reference/debian-reference.en.txt.gz",
                "/usr/share/doc/jargon-text/jargon.txt.gz")
CORPORA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                       "shared", "corpora")
NEUTRAL = "Quuxly"  # replaces the planted value in the neutral copy: a word, no digits


# --- host sentences ------------------------------------------------------------------------------

class _ParaText(html.parser.HTMLParser):
    """Text of every ``<div class="para">`` (DocBook prose paragraphs), nested divs included."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._depth = 0  # div depth inside the current para; 0 = outside
        self._parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "div" and self._depth:
            self._depth += 1
        elif tag == "div" and ("class", "para") in attrs:
            self._depth, self._parts = 1, []
        elif tag == "pre" and self._depth:
            self._parts.append("\x00")  # code inside a paragraph: the sentence is dropped

    def handle_endtag(self, tag):
        if tag == "div" and self._depth:
            self._depth -= 1
            if not self._depth:
                self.paragraphs.append(" ".join("".join(self._parts).split()))

    def handle_data(self, data):
        if self._depth:
            self._parts.append(data)


def handbook_sentences(folder: str = HANDBOOK) -> list[str]:
    """Prose sentences of 6..40 words ending in a full stop, in file order."""
    paths = sorted(glob.glob(os.path.join(folder, "*.html")))
    if not paths:
        sys.exit(f"no HTML in {folder}: apt-get install debian-handbook")
    sentences = []
    for path in paths:
        parser = _ParaText()
        with open(path, encoding="utf-8") as handle:
            parser.feed(handle.read())
        for paragraph in parser.paragraphs:
            for sentence in blingfire.text_to_sentences(paragraph).split("\n"):
                words = sentence.split()
                if 6 <= len(words) <= 40 and sentence.endswith(".") and "\x00" not in sentence:
                    sentences.append(sentence)
    return sentences


# --- planted values ------------------------------------------------------------------------------

FIRST = ("jane", "john", "maria", "li", "ahmed", "olga", "pierre", "sven", "aiko", "carlos",
         "fatima", "noah", "emma", "raj", "chloe", "mateo", "ines", "yusuf", "hannah", "dmitri")
LAST = ("doe", "smith", "garcia", "chen", "khan", "petrova", "martin", "larsen", "tanaka",
        "silva", "haddad", "brown", "muller", "patel", "dubois", "rossi", "novak", "okafor")
DOMAIN_WORDS = ("example", "falcot", "mailhost", "acme", "northwind", "bluefin", "kestrel",
                "debianfan", "linuxmail", "oakridge", "uni-bremen", "cs.uni-example")
TLDS = ("com", "org", "net", "de", "fr", "co.uk", "io", "edu", "info", "nl", "ca")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def gen_email(rng):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}",
                        f"{first}_{last}{rng.randint(1, 99)}", f"{first}+debian",
                        f"{first}.{rng.choice('abcdefgh')}.{last}",
                        f"{last}{rng.randint(1970, 2005)}"])
    if rng.random() < 0.15:
        local = local.capitalize()
    return f"{local}@{rng.choice(DOMAIN_WORDS)}.{rng.choice(TLDS)}", "email"


def _nanp_part(rng):
    while True:
        part = str(rng.randint(2, 9)) + _digits(rng, 2)
        if part[1:] != "11":  # N11 codes are service numbers, never area codes or exchanges
            return part


def gen_phone(rng):
    if rng.random() < 0.6:
        return _nanp_phone(rng)
    return _international_phone(rng)


def _nanp_phone(rng):
    npa, nxx, line = _nanp_part(rng), _nanp_part(rng), _digits(rng, 4)
    fmt = rng.choice(["paren", "dash", "dot", "space", "plus1", "plus1dash", "plus1paren",
                      "trunk", "tollfree"])
    if fmt == "tollfree":
        npa = rng.choice(["800", "888", "877", "866", "855", "844", "833"])
    value = {
        "paren": f"({npa}) {nxx}-{line}", "dash": f"{npa}-{nxx}-{line}",
        "dot": f"{npa}.{nxx}.{line}", "space": f"{npa} {nxx} {line}",
        "plus1": f"+1 {npa} {nxx} {line}", "plus1dash": f"+1-{npa}-{nxx}-{line}",
        "plus1paren": f"+1 ({npa}) {nxx}-{line}", "trunk": f"1-{npa}-{nxx}-{line}",
        "tollfree": f"1-{npa}-{nxx}-{line}",
    }[fmt]
    return value, f"nanp_{fmt}"


def _international_phone(rng):
    d = lambda n: _digits(rng, n)  # noqa: E731
    choices = [
        ("gb_london", f"020 7{d(3)} {d(4)}"), ("gb_london_intl", f"+44 20 7{d(3)} {d(4)}"),
        ("gb_mobile", f"07{rng.choice('4579')}{d(2)} {d(6)}"),
        ("gb_mobile_intl", f"+44 7{rng.choice('4579')}{d(2)} {d(6)}"),
        ("gb_manchester", f"0161 {rng.randint(2, 9)}{d(2)} {d(4)}"),
        ("de_berlin", f"030 {rng.randint(2, 9)}{d(7)}"),
        ("de_berlin_intl", f"+49 30 {rng.randint(2, 9)}{d(7)}"),
        ("de_munich_intl", f"+49 89 {rng.randint(2, 9)}{d(6)}"),
        ("de_mobile", f"0151 {rng.randint(1, 9)}{d(7)}"),
        ("de_mobile_intl", f"+49 151 {rng.randint(1, 9)}{d(7)}"),
        ("de_zero_intl", f"+49 (0)30 {rng.randint(2, 9)}{d(7)}"),
        ("fr_fixed", f"0{rng.randint(1, 5)} {d(2)} {d(2)} {d(2)} {d(2)}"),
        ("fr_mobile", f"06 {d(2)} {d(2)} {d(2)} {d(2)}"),
        ("fr_intl", f"+33 {rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}"),
        ("in_mobile_intl", f"+91 9{d(4)} {d(5)}"), ("in_mobile_dash", f"+91-9{d(9)}"),
        ("au_sydney", f"+61 2 9{d(3)} {d(4)}"), ("jp_tokyo", f"+81 3 {d(4)} {d(4)}"),
        ("es_madrid", f"+34 91 {d(3)} {d(2)} {d(2)}"), ("it_rome", f"+39 06 {d(4)} {d(4)}"),
        ("nl_amsterdam", f"+31 20 {rng.randint(2, 9)}{d(2)} {d(4)}"),
        ("br_mobile", f"+55 11 9{d(4)}-{d(4)}"), ("ie_dublin", f"+353 1 {d(3)} {d(4)}"),
        ("se_stockholm", f"+46 8 {d(3)} {d(3)} {d(2)}"),
    ]
    fmt, value = rng.choice(choices)
    return value, fmt


def _luhn_complete(rng, prefix: str, length: int) -> str:
    body = prefix + _digits(rng, length - len(prefix) - 1)
    for check in string.digits:
        number = body + check
        total = 0
        for index, char in enumerate(reversed(number)):
            value = int(char) * (2 if index % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return number
    raise AssertionError("unreachable: one check digit always fits")


# issuer -> (prefixes, length); "unknown" prefixes belong to no major scheme's published range
CARD_ISSUERS = {
    "visa": (("4",), 16), "mastercard": (("51", "52", "53", "54", "55"), 16),
    "mastercard2": (("2221", "2400", "2720"), 16), "amex": (("34", "37"), 15),
    "discover": (("6011", "65"), 16), "jcb": (("3528", "3569", "3589"), 16),
    "unknown37_16": (("37",), 16), "unknown16": (("1", "7", "8", "90", "99"), 16),
}


def gen_card(rng, issuer=None):
    issuer = issuer or rng.choice(list(CARD_ISSUERS))
    prefixes, length = CARD_ISSUERS[issuer]
    number = _luhn_complete(rng, rng.choice(prefixes), length)
    if length == 15:
        layout = rng.choice(["amex_space", "plain"])
        value = f"{number[:4]} {number[4:10]} {number[10:]}" if layout == "amex_space" else number
    else:
        layout = rng.choice(["space", "dash", "plain"])
        sep = {"space": " ", "dash": "-", "plain": ""}[layout]
        value = sep.join(number[i:i + 4] for i in range(0, 16, 4))
    return value, f"{issuer}_{layout}"


def gen_ipv4(rng):
    while True:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global and not address.is_multicast and not address.is_reserved:
            return str(address), "ipv4"


def gen_ipv6(rng):
    prefix = rng.choice([0x2001, 0x2400, 0x2600, 0x2606, 0x2a00, 0x2a02, 0x2a03, 0x2c0f])
    second = rng.randint(0x0200, 0xffff) if prefix == 0x2001 else rng.getrandbits(16)
    groups = [prefix, second] + [rng.getrandbits(16) for _ in range(2)]
    if rng.random() < 0.5:
        groups += [0, 0, 0, rng.randint(1, 0xff)]  # a host number: compresses to "::1f"
    else:
        groups += [rng.getrandbits(16) for _ in range(4)]
    address = ipaddress.IPv6Address(int("".join(f"{g:04x}" for g in groups), 16))
    if not address.is_global:
        return gen_ipv6(rng)
    form = rng.choice(["compressed", "compressed", "exploded"])
    return (address.compressed if form == "compressed" else address.exploded), f"ipv6_{form}"


def gen_ip(rng):
    return gen_ipv4(rng) if rng.random() < 0.7 else gen_ipv6(rng)


# country -> BBAN layout: "n" digit, "a" capital letter, "c" either
IBAN_LAYOUTS = {"DE": "n" * 18, "GB": "aaaa" + "n" * 14, "FR": "n" * 10 + "c" * 11 + "nn",
                "NL": "aaaa" + "n" * 10, "ES": "n" * 20, "IT": "a" + "n" * 10 + "c" * 12,
                "BE": "n" * 12, "CH": "n" * 5 + "c" * 12, "AT": "n" * 16, "PL": "n" * 24}


def gen_iban(rng):
    country = rng.choice(list(IBAN_LAYOUTS))
    pools = {"n": string.digits, "a": string.ascii_uppercase,
             "c": string.digits + string.ascii_uppercase}
    bban = "".join(rng.choice(pools[k]) for k in IBAN_LAYOUTS[country])
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)), f"iban_{country}_grouped"
    return iban, f"iban_{country}_compact"


def gen_ssn(rng):
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}", "ssn"


def _alnum(rng, n, alphabet=string.ascii_letters + string.digits):
    return "".join(rng.choice(alphabet) for _ in range(n))


def gen_secret(rng):
    upper = string.ascii_uppercase + string.digits
    kind = rng.choice(["aws_key_id", "github", "slack", "google", "stripe", "openai"])
    value = {
        "aws_key_id": "AKIA" + _alnum(rng, 16, upper),
        "github": "ghp_" + _alnum(rng, 36),
        "slack": f"xoxb-{_digits(rng, 12)}-{_digits(rng, 13)}-{_alnum(rng, 24)}",
        "google": "AIza" + _alnum(rng, 35, string.ascii_letters + string.digits + "_-"),
        "stripe": "sk_live_" + _alnum(rng, 24),
        "openai": "sk-proj-" + _alnum(rng, 48),
    }[kind]
    return value, f"secret_{kind}"


# --- decoys ---------------------------------------------------------------------------------------

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
PRODUCTS = ("GCC", "gcc", "Linux", "Python", "Perl", "OpenSSL", "Firefox", "Thunderbird",
            "zlib", "Samba", "Apache", "nginx", "PostgreSQL", "systemd", "glibc", "bash", "Vim",
            "dpkg", "LibreOffice", "Postfix", "Xen", "QEMU", "Java", "Clang")


def _version(rng, parts):
    numbers = [rng.randint(0, 12), rng.randint(0, 30), rng.randint(0, 40), rng.randint(0, 99)]
    return ".".join(str(n) for n in numbers[:parts])


def gen_decoy(rng, kind):
    year, month, day = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    d = lambda n: _digits(rng, n)  # noqa: E731
    if kind == "date":
        return rng.choice([f"{year}-{month:02d}-{day:02d}", f"{day:02d}/{month:02d}/{year}",
                           f"{month:02d}/{day:02d}/{year}", f"{day:02d}.{month:02d}.{year}",
                           f"{MONTHS[month - 1]} {day}, {year}", f"{year}/{month:02d}/{day:02d}",
                           f"{year}-{month:02d}-{day:02d}T{rng.randint(0, 23):02d}:"
                           f"{rng.randint(0, 59):02d}:00Z"])
    if kind == "time":
        return rng.choice([f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
                           f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
                           f"{rng.randint(0, 59):02d}",
                           f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d} pm",
                           f"{year}-{month:02d}-{day:02d} {rng.randint(0, 23):02d}:"
                           f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"])
    if kind == "version":
        product = rng.choice(PRODUCTS)
        return rng.choice([f"{product} {_version(rng, 3)}", f"{product} {_version(rng, 4)}",
                           f"[{product} {_version(rng, 4)}]", f"({product} {_version(rng, 4)})",
                           f"{product}/{_version(rng, 4)}", f"{product.lower()}-{_version(rng, 4)}",
                           f"v{_version(rng, 4)}", f"version {_version(rng, 4)}",
                           f"(version {_version(rng, 4)})"])
    if kind == "price":
        return rng.choice([f"${rng.randint(1, 9)},{d(3)}.{d(2)}", f"${rng.randint(1, 999)}.{d(2)}",
                           f"€{rng.randint(1, 9)}.{d(3)},{d(2)}", f"£{rng.randint(1, 999)}",
                           f"{rng.randint(1, 9)} {d(3)},{d(2)} €",
                           f"USD {rng.randint(1, 9)},{d(3)},{d(3)}"])
    if kind == "isbn":
        return _isbn(rng)
    if kind == "percentage":
        return rng.choice([f"{rng.randint(0, 99)}.{d(1)}%", f"{rng.randint(0, 100)} %",
                           f"-{rng.randint(0, 9)}.{d(2)}%"])
    if kind == "room":
        return rng.choice([f"Room {rng.randint(100, 999)}", f"room {rng.randint(1, 9)}{d(3)}",
                           f"Room {rng.choice('ABCD')}-{rng.randint(100, 4999)}",
                           f"room {rng.randint(1, 9)}.{d(2)}"])
    if kind == "flight":
        airline = rng.choice(["BA", "UA", "LH", "AF", "DL", "KL", "QF", "EK"])
        return rng.choice([f"flight {airline} {rng.randint(1, 9999)}",
                           f"{airline}{rng.randint(10, 9999)}", f"flight {rng.randint(100, 9999)}"])
    if kind == "year":
        return rng.choice([f"{year}", f"{year}-{year + rng.randint(1, 12)}",
                           f"{year} to {year + rng.randint(1, 12)}"])
    if kind == "zip4":
        return f"{rng.choice(['MA', 'NY', 'CA', 'TX'])} {d(5)}-{d(4)}"
    if kind == "private_ip":
        return rng.choice([f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                           f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                           f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                           "127.0.0.1", f"fe80::{rng.getrandbits(16):x}", "::1"])
    if kind == "section":
        number = ".".join(str(rng.randint(1, 15)) for _ in range(4))
        return rng.choice([f"Section {number}", f"section {number}", f"see {number}"])
    if kind == "oid":
        return f"1.3.6.1.4.1.{rng.randint(1, 60000)}.{rng.randint(1, 20)}"
    if kind == "number_table":
        start = rng.choice([64, 100, 128, 1000])
        return " ".join(str(start * 2 ** i) for i in range(rng.randint(4, 6)))
    if kind == "hex_dump":
        return f"{rng.getrandbits(24):07x}: " + " ".join(f"{rng.getrandbits(16):04x}"
                                                         for _ in range(8))
    if kind == "counter":
        return rng.choice([f"{rng.randint(1, 9)}{d(rng.randint(6, 10))}",
                           f"{rng.randint(1, 999)},{d(3)},{d(3)}",
                           f"{rng.randint(1, 9)} {d(3)} {d(3)}"])
    raise ValueError(kind)


def _isbn(rng):
    if rng.random() < 0.5:
        body = "978" + str(rng.randint(0, 1)) + _digits(rng, 8)
        check = (10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10) % 10
        digits = body + str(check)
        value = f"{digits[:3]}-{digits[3]}-{digits[4:8]}-{digits[8:12]}-{digits[12]}"
    else:
        body = str(rng.randint(0, 1)) + _digits(rng, 8)
        check = (11 - sum((10 - i) * int(c) for i, c in enumerate(body)) % 11) % 11
        value = f"{body[0]}-{body[1:4]}-{body[4:9]}-{'X' if check == 10 else check}"
    return rng.choice([f"ISBN {value}", f"ISBN-{13 if len(value) == 17 else 10}: {value}", value])


DECOY_KINDS = ("date", "time", "version", "price", "isbn", "percentage", "room", "flight",
               "year", "zip4", "private_ip", "section", "oid", "number_table", "hex_dump",
               "counter")

# --- frames --------------------------------------------------------------------------------------
# Written as people write these values, one list per type; "{v}" is the value. Clauses are
# appended to a real handbook sentence in place of its full stop.

FRAMES = {
    "EMAIL": [
        "Write to {v} to get an account on the build machine.",
        "Maintainer: Jane Doe <{v}>", "Send the logs to {v} before Friday.", "Contact: {v}",
        "Reply to {v} with the patch attached.", "From: {v}", "CC {v} on the bug report.",
        "{v} is the address of the list owner.", "Mail {v} if your key has expired.",
        "Questions about the mirror go to {v}.",
    ],
    "PHONE": [
        "For urgent problems, call {v} at any hour.",
        "Call {v} to book a slot in the server room.",
        "You can also phone the mirror team on {v}.", "Tel. {v}", "Tel: {v} (weekdays only)",
        "Telephone: {v}", "Phone {v} and ask for the on-call administrator.",
        "Her direct line is {v}.", "My cell is {v}, text me if the build breaks.",
        "Mobile: {v}", "Fax: {v}", "Questions about the migration? Ring {v}.",
        "The help desk can be reached at {v} from 8 to 6.",
        "Contact Pat Miller at {v} before rebooting the router.",
        "Leave a message on {v} if nobody answers.", "Dial {v} to reach the night operator.",
        "Support hotline: {v}.", "If the upgrade fails, give us a call at {v}.",
        "Send an SMS to {v} with the ticket number.", "Reach me at {v} or by mail.",
        "The office number is {v}.", "John Carter ({v}) maintains the build farm.",
        "For billing questions: {v}.", "Call us toll-free at {v}.",
    ],
    "CREDIT_CARD": [
        "Please charge my card {v} for the renewal.", "Card number: {v}",
        "My credit card number is {v}.", "Paid with Visa {v}, expiry 09/27.",
        "The debit card {v} was declined twice.", "CC# {v}", "cc: {v} exp 11/26",
        "Mastercard {v} was used for the purchase.",
        "He typed the card number {v} into the form.", "Credit card: {v}, CVV 123.",
        "Billing card {v} (exp. 04/28).", "Amex {v}",
    ],
    "CREDIT_CARD_NO_CONTEXT": [
        "The order was charged to {v} on Monday.",
        "Use {v} as the test number in the staging shop.", "{v} was flagged by the fraud filter.",
    ],
    "IP_ADDRESS": [
        "The server {v} stopped answering pings.", "Connections from {v} were refused.",
        "Add {v} to the list of trusted hosts.", "IP {v} was banned after ten failed logins.",
        "The mirror resolves to {v}.", "ssh root@{v}", "nameserver {v}",
        "The attacker's address was {v}.", "ping -c 3 {v}",
        "Our gateway ({v}) drops large packets.",
        "Block {v} in the firewall.", "Traffic to {v} goes through the VPN.",
        "The DNS record points at {v}.", "Their public IP is {v}.",
        "Last login: Tue Mar 2 10:04 from {v}",
    ],
    "IP_ADDRESS_V4_ONLY": [
        "Point your browser at http://{v}:8080/.",
        '{v} - - [12/Mar/2021:10:04:11 +0100] "GET / HTTP/1.1" 200 512',
    ],
    "IBAN": [
        "Please transfer the fee to IBAN {v}.", "Account: {v} (Example Bank)", "IBAN: {v}",
        "Bank details: {v}, BIC DEUTDEFF.", "Wire the money to {v} before Friday.",
        "The refund goes to {v}.",
    ],
    "US_SSN": [
        "SSN: {v}", "Social security number {v} was in the leaked file.", "Her SSN is {v}.",
        "The form asks for {v} in box 3.", "Applicant {v} was rejected.",
    ],
    "SECRET": [
        "export API_KEY={v}", "The token {v} was committed by mistake.", 'api_key = "{v}"',
        "Authorization: Bearer {v}", "Revoke {v} immediately.", "TOKEN={v}",
    ],
}
CLAUSES = {
    "EMAIL": [", or write to {v}", " (contact: {v})", "; send questions to {v}"],
    "PHONE": [", or call {v} for help", " (phone: {v})", "; questions go to {v}",
              " - call {v} if in doubt", ", and the admin can be reached on {v}"],
    "CREDIT_CARD": [", paid by card {v}", " (card {v})"],
    "IP_ADDRESS": [" on the host {v}", ", as seen from {v}", " (server {v})"],
    "IBAN": [", paid to {v}", " (IBAN {v})"],
    "US_SSN": [" (SSN {v})"],
    "SECRET": [" using the key {v}", " (token {v})"],
}
DECOY_FRAMES = [
    "The value {v} appears in the report.", "See the entry for {v} in the table below.",
    "{v} is listed in the changelog.", "It was noted as {v} in the log.",
    "The ticket mentions {v} twice.", "Check {v} before upgrading.",
]
DECOY_CLAUSES = [" ({v})", ", as noted in {v}", "; the entry says {v}"]


@dataclass(frozen=True)
class Planted:
    kind: str  # PII type, or "decoy:<kind>"
    fmt: str
    value: str
    document: str
    neutral: str  # the document with the value replaced by NEUTRAL


def _embed(rng, sentences, frames, clauses, value) -> tuple[str, str]:
    """(document, neutral document) for one value."""
    if clauses and rng.random() < 0.3:
        host = rng.choice(sentences)
        sentence = host[:-1] + rng.choice(clauses) + "."
    else:
        sentence = rng.choice(frames)
    before = " ".join(rng.choice(sentences) for _ in range(rng.randint(0, 2)))
    after = " ".join(rng.choice(sentences) for _ in range(rng.randint(0, 2)))
    template = " ".join(part for part in (before, sentence, after) if part)
    return template.replace("{v}", value), template.replace("{v}", NEUTRAL)


GENERATORS: dict[str, Callable] = {
    "EMAIL": gen_email, "PHONE": gen_phone, "IP_ADDRESS": gen_ip, "CREDIT_CARD": gen_card,
    "IBAN": gen_iban, "US_SSN": gen_ssn, "SECRET": gen_secret,
}


def build_set(seed: int, per_type: int, sentences: list[str]) -> list[Planted]:
    """``per_type`` values of each PII type (phones twice as many) and of each decoy kind."""
    rng = random.Random(seed)
    planted = []
    for pii_type, generate in GENERATORS.items():
        for _ in range(per_type * (2 if pii_type == "PHONE" else 1)):
            value, fmt = generate(rng)
            frames, clauses = FRAMES[pii_type], CLAUSES[pii_type]
            if pii_type == "CREDIT_CARD" and not fmt.startswith("unknown") and rng.random() < 0.25:
                frames, clauses, fmt = FRAMES["CREDIT_CARD_NO_CONTEXT"], [], fmt + "_nocontext"
            if fmt == "ipv4":
                frames = frames + FRAMES["IP_ADDRESS_V4_ONLY"]
            document, neutral = _embed(rng, sentences, frames, clauses, value)
            planted.append(Planted(pii_type, fmt, value, document, neutral))
    for kind in DECOY_KINDS:
        for _ in range(max(1, per_type // 2)):
            value = gen_decoy(rng, kind)
            document, neutral = _embed(rng, sentences, DECOY_FRAMES, DECOY_CLAUSES, value)
            planted.append(Planted(f"decoy:{kind}", kind, value, document, neutral))
    return planted


# --- scoring -------------------------------------------------------------------------------------

def load_pii_module(path: str):
    spec = importlib.util.spec_from_file_location("pii_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@dataclass
class Score:
    total: Counter
    hits: Counter  # PII: redacted by any placeholder; decoy: kept
    right_type: Counter
    host_redactions: Counter  # redactions in the neutral documents, by PII type
    host_changed: int
    misses: dict  # kind -> list of (value, output excerpt)


def score(module, planted: list[Planted]) -> Score:
    redactor = module.PiiRedactor(module.PiiConfig())
    placeholders = module.PLACEHOLDERS
    result = Score(Counter(), Counter(), Counter(), Counter(), 0, defaultdict(list))
    for item in planted:
        output = redactor.redact(item.document).text
        neutral = redactor.redact(item.neutral)
        result.host_redactions.update(neutral.counts)
        result.host_changed += bool(neutral.counts)
        key = (item.kind, item.fmt)
        result.total[key] += 1
        if item.kind.startswith("decoy:"):
            hit = output == neutral.text.replace(NEUTRAL, item.value)
        else:
            types = [t for t, placeholder in placeholders.items()
                     if output == neutral.text.replace(NEUTRAL, placeholder)]
            hit = bool(types)
            result.right_type[key] += item.kind in types
        result.hits[key] += hit
        if not hit:
            result.misses[item.kind].append((item.fmt, item.value,
                                             _excerpt(output, item, neutral.text)))
    return result


def _excerpt(output: str, item: Planted, neutral: str) -> str:
    """The output around where the value was (the neutral word's offset in the neutral text)."""
    offset = neutral.find(NEUTRAL)
    return output[max(0, offset - 50):offset + len(item.value) + 40]


def _rate(hits: int, total: int) -> str:
    return f"{hits / total:.4f}" if total else "-"


def print_scores(scores: dict[str, Score], show_misses: int) -> None:
    names = list(scores)
    first = scores[names[0]]
    kinds = sorted({kind for kind, _ in first.total}, key=lambda k: (k.startswith("decoy:"), k))
    header = "| kind | n | " + " | ".join(names) + " |"
    print(header + "\n|" + "---|" * (2 + len(names)))
    for group, label in ((False, "PII recall (redacted)"), (True, "decoys kept")):
        group_total = {name: [0, 0] for name in names}
        for kind in kinds:
            if kind.startswith("decoy:") != group:
                continue
            cells, n = [], 0
            for name in names:
                score_ = scores[name]
                total = sum(v for (k, _), v in score_.total.items() if k == kind)
                hits = sum(v for (k, _), v in score_.hits.items() if k == kind)
                group_total[name][0] += hits
                group_total[name][1] += total
                n = total
                cells.append(_rate(hits, total))
            print(f"| {kind} | {n:,} | " + " | ".join(cells) + " |")
        n = group_total[names[0]][1]
        print(f"| **{label}, overall** | {n:,} | "
              + " | ".join(f"**{_rate(*group_total[name])}**" for name in names) + " |")
    for name in names:
        s = scores[name]
        pii_keys = [k for k in s.total if not k[0].startswith("decoy:")]
        right = sum(s.right_type[k] for k in pii_keys)
        print(f"{name}: right placeholder type {right}/{sum(s.total[k] for k in pii_keys)}; "
              f"redactions in the real handbook sentences around the values: "
              f"{dict(s.host_redactions)} in {s.host_changed} of "
              f"{sum(s.total.values()):,} neutral documents")
    print("\nrecall by format (PII only, formats below 1.0 or the first listed set):")
    for kind, fmt in sorted(k for k in first.total if not k[0].startswith("decoy:")):
        cells = [_rate(scores[name].hits[(kind, fmt)], scores[name].total[(kind, fmt)])
                 for name in names]
        if any(cell != "1.0000" for cell in cells):
            print(f"  {kind:12} {fmt:28} n={first.total[(kind, fmt)]:4}  " + "  ".join(cells))
    if show_misses:
        for name in names:
            for kind, misses in sorted(scores[name].misses.items()):
                print(f"\n{name} misses, {kind} ({len(misses)}):")
                for fmt, value, excerpt in misses[:show_misses]:
                    print(f"  {fmt:24} {value!r:32} ... {excerpt!r}")


# --- the existing corpora ------------------------------------------------------------------------

def corpus_documents():
    for name in ("linux-doc", "python-doc", "perl-doc", "sms-spam"):
        path = os.path.join(CORPORA, f"{name}.jsonl.gz")
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                yield name, json.loads(line)["text"]
    for path in sorted(glob.glob(os.path.join(HANDBOOK, "*.html"))):
        with open(path, encoding="utf-8") as handle:
            yield "debian-handbook", html.unescape(re.sub(r"<[^>]+>", "", handle.read()))
    for path in DEBIAN_TEXTS:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            yield os.path.basename(path).split(".")[0], handle.read()


def _differences(old: str, new: str):
    """(old piece, new piece, new context) where two redactions of one text differ; line by
    line first (placeholders hold no newline), so that long documents stay fast."""
    old_lines, new_lines = old.split("\n"), new.split("\n")
    lines = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for op, a0, a1, b0, b1 in lines.get_opcodes():
        if op == "equal":
            continue
        before, after = "\n".join(old_lines[a0:a1]), "\n".join(new_lines[b0:b1])
        chars = difflib.SequenceMatcher(None, before, after, autojunk=False)
        for char_op, c0, c1, d0, d1 in chars.get_opcodes():
            if char_op != "equal":
                yield (before[c0:c1], after[d0:d1],
                       after[max(0, d0 - 40):d1 + 25].replace("\n", " "))


def compare_corpora(modules: dict, show: int) -> None:
    """Redactions per type and corpus with each module, and where the outputs differ."""
    redactors = {name: m.PiiRedactor(m.PiiConfig()) for name, m in modules.items()}
    counts = {name: defaultdict(Counter) for name in modules}
    changes: list[tuple[str, str, str, str]] = []
    cpu_seconds = Counter()  # per module; documents alternate between the modules
    megabytes = 0.0
    for corpus, text in corpus_documents():
        outputs = {}
        megabytes += len(text.encode("utf-8")) / 1e6
        for name, redactor in redactors.items():
            started = time.process_time()
            result = redactor.redact(text)
            cpu_seconds[name] += time.process_time() - started
            counts[name][corpus].update(result.counts)
            outputs[name] = result.text
        if len(outputs) == 2:
            old, new = outputs.values()
            if old != new:
                changes += [(corpus, *change) for change in _differences(old, new)]
    corpora = list(next(iter(counts.values())))
    types = sorted({t for c in counts.values() for by in c.values() for t in by})
    print("| corpus | type | " + " | ".join(modules) + " |\n|---|---|" + "---:|" * len(modules))
    for corpus in corpora:
        for pii_type in types:
            cells = [counts[name][corpus][pii_type] for name in modules]
            if any(cells):
                print(f"| {corpus} | {pii_type} | " + " | ".join(f"{c:,}" for c in cells) + " |")
    print(f"\nCPU seconds to redact them all ({megabytes:.1f} MB): "
          + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in cpu_seconds.items()))
    if changes:
        print(f"\n{len(changes)} places where the outputs differ (old -> new, new context):")
        for corpus, old, new, context in changes[:show]:
            print(f"  {corpus:16} {old!r} -> {new!r}   ...{context!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[12, 13, 14],
                        help="one planted set per seed; the first is the reported one")
    parser.add_argument("--per-type", type=int, default=400,
                        help="values per PII type (phones: twice); decoys: half per kind")
    parser.add_argument("--baseline", help="another filters/pii.py to score side by side")
    parser.add_argument("--show-misses", type=int, default=0)
    parser.add_argument("--corpora", action="store_true",
                        help="also compare redactions on the shared corpora and Debian texts")
    parser.add_argument("--show-changes", type=int, default=30)
    args = parser.parse_args(argv)

    modules = {"this tree": current_pii}
    if args.baseline:
        modules = {"baseline": load_pii_module(args.baseline), "this tree": current_pii}
    sentences = handbook_sentences()
    print(f"{len(sentences):,} handbook sentences")
    for seed in args.seeds:
        planted = build_set(seed, args.per_type, sentences)
        print(f"\n## seed {seed}: {len(planted):,} documents")
        print_scores({name: score(m, planted) for name, m in modules.items()},
                     args.show_misses if seed == args.seeds[0] else 0)
    if args.corpora:
        print("\n## redactions on text already in the repository's corpora and the Debian texts")
        compare_corpora(modules, args.show_changes)


if __name__ == "__main__":
    main()

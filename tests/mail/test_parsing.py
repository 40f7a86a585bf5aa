# ruff: noqa: E501 - sample mail is quoted as clients write it, long lines included
"""parse_email on mail as real clients send it, and on mail nobody should have sent."""

from __future__ import annotations

import base64
import random
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import pytest

from ticketing.mail.parsing import (
    REPLY_SCAN_CHARS,
    IncomingAttachment,
    UnreadableEmail,
    parse_email,
    strip_reply,
)

CRLF = b"\r\n"


def raw(text: str) -> bytes:
    """A message written with \\n line ends in the test, sent with CRLF as on the wire."""
    return text.lstrip("\n").replace("\n", "\r\n").encode("utf-8")


GMAIL_REPLY = raw("""
MIME-Version: 1.0
Date: Mon, 3 Nov 2025 10:40:12 +0100
References: <ack-1@helpdesk.example.com> <reply-2@helpdesk.example.com>
In-Reply-To: <reply-2@helpdesk.example.com>
Message-ID: <CAF=abc123@mail.gmail.com>
Subject: Re: [#12] Printer jams
From: Jane Doe <Jane.Doe@Gmail.com>
To: Support <support@example.com>
Content-Type: multipart/alternative; boundary="000000000000b1"

--000000000000b1
Content-Type: text/plain; charset="UTF-8"

Thanks, restarting fixed it!

On Mon, 3 Nov 2025 at 10:12, Support <support@example.com> wrote:
> Please try restarting the printer.
>
> --
> Support team

--000000000000b1
Content-Type: text/html; charset="UTF-8"

<div dir="ltr">Thanks, restarting fixed it!</div><br><div class="gmail_quote">On Mon, 3 Nov 2025 at 10:12, Support wrote:<blockquote>Please try restarting the printer.</blockquote></div>

--000000000000b1--
""")

OUTLOOK_REPLY = raw("""
From: =?iso-8859-1?Q?J=FCrgen_M=FCller?= <jm@contoso.example>
To: "support@example.com" <support@example.com>
CC: Boss <boss@contoso.example>
Subject: =?iso-8859-1?Q?AW:_[#7]_Drucker_h=E4ngt?=
Thread-Topic: [#7] Drucker
Date: Mon, 3 Nov 2025 09:40:12 +0000
Message-ID: <AM0PR01MB1234@AM0PR01MB1234.eurprd01.prod.outlook.com>
References: <reply-7@helpdesk.example.com>
In-Reply-To: <reply-7@helpdesk.example.com>
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable
MIME-Version: 1.0

Der Drucker h=E4ngt immer noch.

Mit freundlichen Gr=FC=DFen
J=FCrgen M=FCller

________________________________
Von: Support <support@example.com>
Gesendet: Montag, 3. November 2025 09:12
An: J=FCrgen M=FCller <jm@contoso.example>
Betreff: [#7] Drucker

Bitte neu starten.
""")

THUNDERBIRD_REPLY = raw("""
Message-ID: <5b1c2d3e-tb@example.org>
Date: Mon, 3 Nov 2025 11:00:00 +0100
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
Subject: Re: [#3] VPN
To: support@example.com
References: <ack-3@helpdesk.example.com>
From: Pierre <pierre@example.org>
In-Reply-To: <ack-3@helpdesk.example.com>
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 8bit

Merci, le VPN fonctionne de nouveau.

Le 03/11/2025 à 10:12, Support a écrit :
> Essayez de redémarrer le client VPN.
>
""")

APPLE_MAIL_REPLY = raw("""
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit
Mime-Version: 1.0 (Mac OS X Mail 16.0)
Subject: Re: [#44] Login
From: Sam <sam@icloud.example>
In-Reply-To: <reply-44@helpdesk.example.com>
Date: Mon, 3 Nov 2025 11:05:00 +0100
Message-Id: <A1B2C3D4-E5F6@icloud.example>
To: support@example.com

Still cannot log in, same error.

Sent from my iPhone

> On 3 Nov 2025, at 10:12, Support <support@example.com> wrote:
>
> Could you try again?
""")


def build(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "Alice <alice@example.com>")
    msg["To"] = headers.pop("To", "support@example.com")
    msg["Subject"] = headers.pop("Subject", "Help")
    msg["Date"] = format_datetime(datetime(2025, 11, 3, 10, 0, tzinfo=UTC))
    msg["Message-ID"] = headers.pop("Message_ID", "<m1@example.com>")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    return msg


def test_a_gmail_reply_keeps_only_what_it_adds():
    parsed = parse_email(GMAIL_REPLY)
    assert parsed.message_id == "<CAF=abc123@mail.gmail.com>"
    assert parsed.in_reply_to == ["<reply-2@helpdesk.example.com>"]
    assert parsed.references == ["<ack-1@helpdesk.example.com>", "<reply-2@helpdesk.example.com>"]
    assert parsed.from_address == "jane.doe@gmail.com"
    assert parsed.from_name == "Jane Doe"
    assert parsed.subject == "Re: [#12] Printer jams"
    assert "Please try restarting" in parsed.text  # the whole text is kept
    assert parsed.reply_text == "Thanks, restarting fixed it!"
    assert parsed.attachments == []
    assert parsed.auto_reason is None
    assert parsed.size == len(GMAIL_REPLY)


def test_an_outlook_reply_in_german_with_its_signature():
    parsed = parse_email(OUTLOOK_REPLY)
    assert parsed.from_address == "jm@contoso.example"
    assert parsed.from_name == "Jürgen Müller"
    assert parsed.subject == "AW: [#7] Drucker hängt"
    assert parsed.to_addresses == ["support@example.com", "boss@contoso.example"]
    assert parsed.reply_text == "Der Drucker hängt immer noch."


def test_a_thunderbird_reply_in_french():
    parsed = parse_email(THUNDERBIRD_REPLY)
    assert parsed.reply_text == "Merci, le VPN fonctionne de nouveau."
    assert parsed.in_reply_to == ["<ack-3@helpdesk.example.com>"]


def test_an_apple_mail_reply_drops_sent_from_my_iphone():
    parsed = parse_email(APPLE_MAIL_REPLY)
    assert parsed.message_id == "<A1B2C3D4-E5F6@icloud.example>"
    assert parsed.reply_text == "Still cannot log in, same error."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Login fails with error 500.\n\n-- \nJohn Doe\nACME Corp\n+1 555 0100",
            "Login fails with error 500.",
        ),
        (
            "Danke!\n\nAm Mo., 3. Nov. 2025 um 10:12 Uhr schrieb Support <s@example.com>:\n> alt",
            "Danke!",
        ),
        (
            "Grazie.\n\nIl giorno lun 3 nov 2025 alle ore 10:12 Support <s@example.com> ha scritto:\n> x",
            "Grazie.",
        ),
        ("Done.\n\n-----Original Message-----\nFrom: Support\nSent: Monday\n\nold text", "Done."),
        # Bottom-posted: what the sender added is below the quote.
        (
            "On Mon, 3 Nov 2025 at 10:12, Support <s@example.com> wrote:\n> Try again?\n\nI did, no luck.",
            "I did, no luck.",
        ),
        # A sentence that starts with "Thanks," is not a signature.
        (
            "Hello,\nThanks, it works now\nBut the export is broken.",
            "Hello,\nThanks, it works now\nBut the export is broken.",
        ),
        # Lists stay, and so does the indentation of pasted code.
        (
            "Steps:\n- open the app\n- click save\n\n    Traceback (most recent call last):\n      boom",
            "Steps:\n- open the app\n- click save\n\n    Traceback (most recent call last):\n      boom",
        ),
        ("", ""),
    ],
)
def test_strip_reply(text, expected):
    assert strip_reply(text) == expected


def test_strip_reply_is_bounded_on_hostile_text():
    # Inputs that make the reply parser's patterns super-linear when given unbounded text.
    hostile = [
        "On " * 100_000,
        ("Am schrieb " * 25 + "\n") * 2000,
        " \n" * 100_000,
        "- a\n" * 50_000,
        ("On " * 66 + "\n") * 1000,
    ]
    for text in hostile:
        started = time.perf_counter()
        result = strip_reply(text)
        assert time.perf_counter() - started < 5, text[:20]
        assert len(result) <= REPLY_SCAN_CHARS + 10


def test_html_only_mail_becomes_text():
    msg = build()
    msg.set_content(
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head>"
        "<body><p>The <b>export</b> fails:</p><ul><li>CSV</li><li>PDF</li></ul>"
        "<table><tr><td>format</td><td>error</td></tr></table></body></html>",
        subtype="html",
    )
    parsed = parse_email(msg.as_bytes())
    assert "The export fails:" in parsed.text
    assert "* CSV" in parsed.text and "* PDF" in parsed.text
    assert "format" in parsed.text and "error" in parsed.text
    assert "alert" not in parsed.text and "color" not in parsed.text
    assert "<" not in parsed.text


def test_an_empty_plain_part_falls_back_to_html():
    msg = build()
    msg.set_content("")
    msg.add_alternative("<p>Only in HTML</p>", subtype="html")
    assert parse_email(msg.as_bytes()).text == "Only in HTML"


def test_attachments_inline_images_and_encoded_names():
    msg = build(Subject="=?utf-8?b?w4RyZ2VyIG1pdCBkZXIgUmVjaG51bmc=?=")
    msg.set_content("See the attached files.")
    msg.add_alternative('<p>See <img src="cid:logo@x"></p>', subtype="html")
    html = msg.get_payload()[1]
    html.add_related(b"\x89PNG fake", maintype="image", subtype="png", cid="<logo@x>")
    msg.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="Rechnung März.pdf"
    )
    msg.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="../../etc/passwd")
    msg.add_attachment(b"no name", maintype="application", subtype="octet-stream")
    parsed = parse_email(msg.as_bytes())
    assert parsed.subject == "Ärger mit der Rechnung"
    assert parsed.text == "See the attached files."
    by_type = {a.content_type: a for a in parsed.attachments}
    assert by_type["image/png"] == IncomingAttachment(
        "attachment", "image/png", b"\x89PNG fake", True
    )
    assert by_type["application/pdf"].filename == "Rechnung März.pdf"  # RFC 2231
    assert by_type["application/pdf"].data == b"%PDF-1.4 fake"
    assert by_type["application/pdf"].inline is False
    assert by_type["text/csv"].filename == "passwd"  # never a path
    assert by_type["text/csv"].data == b"a,b\n1,2\n"
    assert by_type["application/octet-stream"].filename == "attachment"


def test_rfc2047_encoded_filename_as_outlook_sends_it():
    message = raw("""
From: a@example.com
Subject: file
Message-ID: <f@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain

see file
--b
Content-Type: application/pdf; name="=?utf-8?B?0J7RgtGH0ZHRgi5wZGY=?="
Content-Disposition: attachment; filename="=?utf-8?B?0J7RgtGH0ZHRgi5wZGY=?="
Content-Transfer-Encoding: base64

JVBERg==
--b--
""")
    parsed = parse_email(message)
    assert [(a.filename, a.data) for a in parsed.attachments] == [("Отчёт.pdf", b"%PDF")]


def test_a_forwarded_message_is_one_attachment():
    inner = build(Subject="Original", Message_ID="<inner@example.com>")
    inner.set_content("inner text")
    outer = build(Subject="Fwd: Original")
    outer.set_content("FYI")
    outer.add_attachment(inner)
    parsed = parse_email(outer.as_bytes())
    assert parsed.text == "FYI"
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("message.eml", "message/rfc822")
    ]
    assert b"inner text" in parsed.attachments[0].data


def test_missing_or_garbage_message_ids():
    msg = build(Message_ID="")
    del msg["Message-ID"]
    msg["In-Reply-To"] = "garbage without brackets"
    msg["References"] = "<a@x> junk <b@y> <a@x>"
    msg.set_content("x")
    parsed = parse_email(msg.as_bytes())
    assert parsed.message_id is None
    assert parsed.in_reply_to == []
    assert parsed.references == ["<a@x>", "<b@y>"]
    msg2 = build(Message_ID="bare@example.com")
    msg2.set_content("x")
    assert parse_email(msg2.as_bytes()).message_id == "<bare@example.com>"


def test_a_subject_is_one_line():
    message = raw("From: a@example.com\nSubject: first\n\tsecond\x07 \u2028third\n\nbody\n")
    assert parse_email(message).subject == "first second third"
    assert parse_email(raw("From: a@example.com\n\nbody\n")).subject == ""


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("Auto-Submitted: auto-replied", "Auto-Submitted: auto-replied"),
        (
            "Auto-Submitted: auto-generated; owner-email=x@y",
            "Auto-Submitted: auto-generated; owner-email=x@y",
        ),
        ("Precedence: bulk", "Precedence: bulk"),
        ("Precedence: auto_reply", "Precedence: auto_reply"),
        ("X-Autoreply: yes", "X-Autoreply header"),
        ("X-Autorespond: Out of office", "X-Autorespond header"),
        ("Return-Path: <>", "bounce: empty Return-Path"),
    ],
)
def test_automatic_mail_is_recognised(headers, reason):
    message = raw(f"From: a@example.com\n{headers}\nSubject: Out of office\n\nAway.\n")
    assert parse_email(message).auto_reason == reason


def test_auto_submitted_no_is_a_person():
    message = raw("From: a@example.com\nAuto-Submitted: no\nPrecedence: normal\n\nhi\n")
    assert parse_email(message).auto_reason is None


def test_a_bounce_is_recognised():
    bounce = raw("""
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: support@example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="r"

--r
Content-Type: text/plain

This is the mail system. Your message could not be delivered.
--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1
--r--
""")
    assert parse_email(bounce).auto_reason == "bounce: sent by mailer-daemon@mx.example.net"
    from_someone = bounce.replace(b"MAILER-DAEMON@mx.example.net", b"relay@mx.example.net")
    assert parse_email(from_someone).auto_reason == "bounce: delivery status report"
    postmaster = raw("From: postmaster@example.org\nSubject: x\n\ny\n")
    assert parse_email(postmaster).auto_reason == "bounce: sent by postmaster@example.org"


def test_unknown_charsets_and_bad_encodings_are_read_with_replacement():
    message = raw("""
From: a@example.com
Subject: =?x-unknown-42?q?Hallo?=
Content-Type: text/plain; charset="x-unknown-42"
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe aus K=C3=B6ln
""")
    parsed = parse_email(message)
    assert parsed.text == "Grüße aus Köln"  # guessed as UTF-8
    assert "Hallo" in parsed.subject
    latin = raw(
        "From: a@example.com\nContent-Type: text/plain; charset=utf-8\n\n"
    ) + "Köln café".encode("latin-1")
    assert "K" in parse_email(latin).text and "caf" in parse_email(latin).text
    bad_base64 = raw(
        "From: a@example.com\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nSGVsbG8gd29y!!bGQ=\n"
    )
    assert isinstance(parse_email(bad_base64).text, str)


def test_truncated_mime_keeps_what_is_there():
    whole = raw("""
From: a@example.com
Subject: cut
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="zz"

--zz
Content-Type: text/plain

The first part arrived.
--zz
Content-Type: application/pdf; name="a.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
""")
    parsed = parse_email(whole[: len(whole) - 10])
    assert parsed.text == "The first part arrived."


def test_too_many_attachments_is_unreadable():
    msg = build()
    msg.set_content("many")
    for i in range(101):
        msg.add_attachment(
            b"x", maintype="application", subtype="octet-stream", filename=f"{i}.bin"
        )
    with pytest.raises(UnreadableEmail, match=r"too many attachments \(101 > 100\)"):
        parse_email(msg.as_bytes())
    assert len(parse_email(msg.as_bytes(), max_attachments=200).attachments) == 101


def test_a_thousand_attachments():
    parts = [
        f'--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="{i}"\r\n\r\nx\r\n'
        for i in range(1000)
    ]
    message = (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + "".join(parts).encode()
        + b"--b--\r\n"
    )
    with pytest.raises(UnreadableEmail, match=r"too many attachments \(1000 > 100\)"):
        parse_email(message)


def test_a_mime_bomb_is_unreadable():
    depth = 200
    message = b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
    for i in range(depth):
        message += f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
    message += b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    with pytest.raises(UnreadableEmail, match="nested"):
        parse_email(message)


@pytest.mark.parametrize("message", [b"", b"   \r\n", b"\r\n\r\nno headers at all"])
def test_nothing_usable_is_unreadable(message):
    with pytest.raises(UnreadableEmail):
        parse_email(message)


def test_random_bytes_never_raise_anything_else():
    rng = random.Random(20251130)
    samples = [GMAIL_REPLY, OUTLOOK_REPLY, THUNDERBIRD_REPLY, APPLE_MAIL_REPLY]
    for _ in range(400):
        kind = rng.randrange(4)
        if kind == 0:
            data = rng.randbytes(rng.randrange(1, 2000))
        elif kind == 1:  # a real message cut anywhere
            base = rng.choice(samples)
            data = base[: rng.randrange(1, len(base))]
        elif kind == 2:  # a real message with bytes flipped
            data = bytearray(rng.choice(samples))
            for _ in range(rng.randrange(1, 30)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:  # headers that look right around garbage
            data = (
                b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
                + base64.b64encode(rng.randbytes(300))
            )
        try:
            parsed = parse_email(data)
        except UnreadableEmail as exc:
            assert str(exc)
            continue
        assert isinstance(parsed.text, str) and isinstance(parsed.subject, str)
        assert "\n" not in parsed.subject and "\r" not in parsed.subject
        assert all(a.filename and "/" not in a.filename for a in parsed.attachments)

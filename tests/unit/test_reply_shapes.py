"""Staff replies in the shapes real mail clients write them (issue 6; docs/mail.md#threading, 4.5).

Three tables:

- ``SAMPLES``: real replies written by real clients (tests/corpus/replies, provenance in
  tests/corpus/SOURCES.md). After ``parse_message``, ``answer_text`` must keep what the person
  wrote and drop the quotation.
- ``VARIANTS``: "a staff member answers a maild notification", built on the structure of a real
  reply (its attribution line, header block or quoting style) with a real ``staff_new``
  notification in the quoted part. Whatever else happens, the internal block never survives.
- ``SUBJECTS``: what replies and forwards do to the subject, and which ticket tags remain.

Nothing written above the quotation is ever asserted to be cut. Text written below it
(bottom-posting) or between quoted lines (inline answers) is kept too.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from maild.core import threader
from maild.core.commands import Command, parse_staff_text
from maild.core.reply_text import answer_text
from maild.core.parse import parse_message
from maild.mail import Envelope
from maild.outbound.templates import INTERNAL_END, INTERNAL_START, SAMPLE_CONTEXTS, Templates

REPO = Path(__file__).resolve().parent.parent.parent
REPLIES = REPO / "tests" / "corpus" / "replies"
QUEUES = frozenset({"jasenasiat", "lakineuvonta"})
STAFF = frozenset({"maija.virtanen@liitto.fi", "pekka@liitto.fi"})


# --- 1. Real replies from real clients ------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    file: str
    client: str
    kept: tuple[str, ...]  # phrases the person wrote (above, below or between quoted lines)
    dropped: tuple[str, ...]  # phrases of the quotation and its attribution or header block


SAMPLES = (
    # Outlook / Exchange and other "header block" clients
    Sample("outlook_from_sent_block.eml", "Outlook (en, From:/Sent: block, [mailto:])",
           ("Hello",),
           ("From: xxx@xxx.mailgun.org", "The manager's comment", "Unsubscribe")),
    Sample("outlook_from_sent_cc_block.eml", "Outlook (en, From:/Sent:/To:/Cc:/Subject:)",
           ("Outlook email reply with a team mention",),
           ("CRM Comments", "Should the team mention", "Here is quoted text")),
    Sample("outlook_mailto_then_iphone_quote.eml", "Outlook (en) over an iPhone reply",
           ("And another reply!",),
           ("Dan Watson", "A reply", "Sent from my iPhone", "This is a message.")),
    Sample("outlook_pt_br_header_block.eml", "Outlook (pt-BR, De:/Enviada em:/Para:/Assunto:)",
           ("I have gained valuable experience", "life in general."),
           ("Enviada em:", "Thank you for recently participating")),
    Sample("outlook_forward_fw.eml", "Outlook forward (FW:, From:/To:/Date:/Subject:)",
           ("@team, can you have a look at this email below?",),
           ("Some One", "Discoursing much today?")),
    Sample("aol_original_message.eml", "AOL webmail (-----Original Message-----)",
           ("Hello",),
           ("Original Message", "From: bob", "Sent: Mon, Apr 2, 2012")),
    Sample("yahoo_original_message.eml", "Yahoo Mail (----- Original Message -----)",
           ("Hello",),
           ("Original Message", "bob@xxx.mailgun.org", "Sent: Monday, April 2, 2012")),
    Sample("zimbra_comcast_original_message.eml", "Zimbra web client (----- Original Message -----)",
           ("Hello",),
           ("Original Message", "lsloan6@nyc.rr.com")),
    Sample("hotmail_quoted_header_block.eml", "Hotmail (quoted '> Subject:/> From:' block)",
           ("Hello",),
           ("From: bob@xxx.mailgun.org", "Date: Mon, 2 Apr 2012", "Subject: Test")),
    # Gmail and other "On ... wrote:" clients
    Sample("gmail_web_on_wrote.eml", "Gmail web (On ... wrote:)",
           ("This is a reply from standard GMail", "Here's a link http://example.com"),
           ("Arpit Jalan", "Test reply.", "To unsubscribe from these emails")),
    Sample("android_gmail_on_wrote.eml", 'Gmail Android (On ..., "Name" <addr> wrote:)',
           ("this is a reply from Android 5 gmail", "This is a link to http://example.com"),
           ("Arpit Jalan", "Previous Replies")),
    Sample("gmail_inbox_signature_after_quote.eml", "Google Inbox (signature below the quotation)",
           ("This is a test reply from Inbox.",),
           ("notifications@github.com", "LGTM", "this is my signature")),
    Sample("gmail_danish_skrev_name.eml", "Gmail (da, 'DATE skrev NAME <addr>:')",
           ("This is text from gmail set up with danish locale",),
           ("skrev John Doe", "port forwarding stopped", "Reply to this email directly")),
    Sample("gmail_german_wrapped_schrieb.eml", "Gmail (de, attribution wrapped over two lines)",
           ("This is a reply with German quote multiline",),
           ("schrieb Rick Sanchez", "rick.sanchez@example.com>:", "Hello this is a test")),
    Sample("gmail_wrapped_attribution_bottom_post.eml", "Gmail (en, wrapped 'On ... <addr>' / 'wrote:')",
           ("The quick brown fox",),
           ("On Wed, Oct 8, 2014", "wrote:", "Test reply.", "techAPJ")),
    Sample("paragraph_starting_with_on.eml", "Gmail (answer paragraph starting with 'On')",
           ("On friday when I tried it didn't work as expect.", "This line would have been considered"),
           ("Bob Jones", "We are still very interested")),
    Sample("greedy_on_colon_line.eml", "Apple Mail (answer line 'On ... :' that is no attribution)",
           ("On your remote host you can run:", "telnet 127.0.0.1 52698", "the tunnel is not working."),
           ("George Plymale", "port forwarding stopped")),
    # Apple Mail, iPhone, other Mac clients
    Sample("apple_mail_on_wrote.eml", "Apple Mail (On ..., at ..., NAME wrote:)",
           ("Hello",),
           ("bob wrote", "Hi")),
    Sample("apple_mail_quoted_attribution.eml", "Mac OS X Mail 8 (attribution inside the quote)",
           ("Hello",),
           ("Adam Renberg", "Hi there!")),
    Sample("iphone_sent_from_my_iphone.eml", "iPhone Mail (Sent from my iPhone, QP soft break)",
           ("Hello", "Sent from my iPhone"),
           ("bob@example.com", "wrote")),
    Sample("ios_mail_quoted_attribution.eml", "iPhone Mail iOS 8 ('> On ... wrote:')",
           ("this is a reply from iOS default mail", "Here's a link http://example.com"),
           ("Arpit Jalan", "Previous Replies")),
    Sample("sparrow_signature_before_quote.eml", "Sparrow (Mac; '-- ' signature above the quote)",
           ("Hello", "Sent with Sparrow"),
           ("On Tuesday, April 3, 2012", "bob wrote")),
    # Thunderbird, Mutt: bottom-posting and inline answers
    Sample("thunderbird_bottom_post.eml", "Thunderbird 3 (answer below the quotation)",
           ("Hello",),
           ("Megan One wrote",)),
    Sample("mutt_inline_reply.eml", "Mutt (inline answers between quoted lines)",
           ("This has been voted on", "Also voted and just needs to be confirmed",
            "This has been closed by mutual agreement", "Steve Langasek"),
           ("Don Armstrong wrote", "The next Debian CTTE IRC meeting")),
    # HTML only
    Sample("blackberry_html_only.eml", "BlackBerry 10 (HTML only, From:/Sent: in a table)",
           ("The EC2 instance - I've seen that there tends to be odd",),
           ("Grizzly B", "Log in to our EC2 instance", "user preferences")),
    Sample("outlook_com_html_only_date_first.eml", "Outlook.com (HTML only, <hr> then Date:/Subject:/From:)",
           ("Hi. I am fine.", "Thanks,", "Alex"),
           ("abc@example.com", "Hello! How are you?", "Sasha.", "Date: Thu, 26 Jun 2014",
            "Subject: Test message")),
    # Forwards
    Sample("gmail_forward_fwd.eml", "Gmail forward (---------- Forwarded message ---------)",
           (),
           ("Some One", "Discoursing much today?", "Forwarded message")),
    # a new message (no quotation) for the mobile-signature case below
    Sample("outlook_ios_get_outlook_signature.eml", "Outlook for iOS (new message, no quotation)",
           ("What is the best way to clear a Riak bucket", "Get Outlook for iOS"),
           ()),
)


def _answer_of(file: str) -> str:
    parsed, _ = parse_message((REPLIES / file).read_bytes())
    return answer_text(parsed.text)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda sample: sample.file[:-4])
def test_real_reply_keeps_the_answer_and_drops_the_quotation(sample: Sample) -> None:
    answer = _answer_of(sample.file)
    for phrase in sample.kept:
        assert phrase in answer, f"{sample.client}: lost {phrase!r}"
    for phrase in sample.dropped:
        assert phrase not in answer, f"{sample.client}: relayed quoted {phrase!r}"


def test_every_reply_sample_is_in_the_table_and_in_sources() -> None:
    files = sorted(path.name for path in REPLIES.glob("*.eml"))
    assert files == sorted(sample.file for sample in SAMPLES)
    sources = (REPO / "tests" / "corpus" / "SOURCES.md").read_text(encoding="utf-8")
    assert [name for name in files if f"`replies/{name}`" not in sources] == []
    assert all(path.stat().st_size < 100_000 for path in REPLIES.glob("*.eml"))


# Real replies whose first line is a Markdown heading ("### This is a reply from ..."): text,
# not a command line (a command is '#' followed at once by its name).
HEADING_FIRST = ("gmail_web_on_wrote.eml", "android_gmail_on_wrote.eml", "ios_mail_quoted_attribution.eml")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.file[:-4])
@pytest.mark.parametrize("commands", ["#note", "#close\n#priority HIGH\n"])
def test_command_lines_on_top_of_a_real_reply_are_obeyed_and_removed(sample: Sample, commands: str) -> None:
    parsed, _ = parse_message((REPLIES / sample.file).read_bytes())
    staff = parse_staff_text(f"{commands}\n{parsed.text}", QUEUES, STAFF)
    expected = (Command("note"),) if commands == "#note" else (Command("close"), Command("priority", "high"))
    assert staff.commands == expected and staff.errors == ()
    assert staff.answer == answer_text(parsed.text)


@pytest.mark.parametrize("file", HEADING_FIRST)
def test_a_reply_starting_with_a_markdown_heading_is_text(file: str) -> None:
    parsed, _ = parse_message((REPLIES / file).read_bytes())
    staff = parse_staff_text(parsed.text, QUEUES, STAFF)
    assert staff.commands == () and staff.errors == ()
    assert staff.answer.lower().startswith("### this is a reply from")
    assert staff.answer == answer_text(parsed.text)


# Real subjects of the samples: what strip_prefixes leaves (the subject a new ticket would get).
REAL_SUBJECTS = {
    "hotmail_quoted_header_block.eml": "Test",
    "gmail_web_on_wrote.eml": "[Discourse Meta] [Lounge] Testing default email replies",
    "blackberry_html_only.eml": '[Discourse Meta] [PM] re: Regarding your post in "Site Customization not working"',
    "outlook_forward_fw.eml": "Discoursing much?",
    "gmail_forward_fwd.eml": "Discoursing much?",
    "mutt_inline_reply.eml": "Next Debian CTTE IRC Meeting at date -d'Thu Jul 31 17:00:00 UTC 2014'",
    "outlook_ios_get_outlook_signature.eml": "Riak bucket",
}


@pytest.mark.parametrize(("file", "stripped"), REAL_SUBJECTS.items())
def test_real_subjects_lose_their_prefixes_and_carry_no_tag_of_ours(file: str, stripped: str) -> None:
    parsed, _ = parse_message((REPLIES / file).read_bytes())
    assert threader.strip_prefixes(parsed.subject) == stripped
    assert threader.subject_tags(parsed.subject, "JP") == ()


# --- 2. Staff answering a real maild notification, in real clients' shapes --------------------

NOTE = Templates(REPO / "templates").render("staff_new", "fi", SAMPLE_CONTEXTS["staff_new"])
SUBJECT = NOTE.subject  # "[JP#12] Uusi tiketti: Eroaminen liitosta"
QUEUE = "Jäsenasiat <jasenpalvelu@liitto.fi>"
TOKEN_ADDRESS = "jasenpalvelu+t0k3n@liitto.fi"
NOTIFICATION_ID = "<notification-12@liitto.fi>"
INTERNAL = NOTE.text[NOTE.text.index(INTERNAL_START): NOTE.text.index(INTERNAL_END) + len(INTERNAL_END)]
INTERNAL_LINES = tuple(line.strip() for line in INTERNAL.splitlines() if line.strip())
MEMBER_TEXT = "haluan erota liitosta"  # the member's words, quoted below the internal block
ANSWER = "Hei Matti,\n\neroilmoituksesi on kirjattu: jäsenyys päättyy 30.11.2026.\n\nTerveisin\nMaija Virtanen"


def quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def html_lines(text: str) -> str:
    return "<br>".join(html.escape(line) for line in text.split("\n"))


def html_divs(text: str) -> str:
    return "".join(f"<div>{html.escape(line) or '<br>'}</div>" for line in text.split("\n"))


def html_mso(text: str) -> str:
    return "".join(f"<p class=MsoNormal>{html.escape(line) or '<o:p>&nbsp;</o:p>'}<o:p></o:p></p>"
                   for line in text.split("\n"))


@dataclass(frozen=True)
class Variant:
    name: str
    shape_of: str  # the real sample (or other real evidence) whose structure this copies
    body: Callable[[str], str]  # what the staff member typed -> the whole body as the client sends it
    expected: Callable[[str], str] = lambda top: top  # the answer the member should get
    subtype: str = "plain"
    subject: str | None = f"VS: {SUBJECT}"
    top_posted: bool = True


FI_OUTLOOK_BLOCK = (f"Lähettäjä: {QUEUE}\nLähetetty: tiistai 24. marraskuuta 2026 10.01\n"
                    f"Vastaanottaja: Maija Virtanen <maija.virtanen@liitto.fi>\nAihe: {SUBJECT}\n")
GMAIL_EN = "On Tue, Nov 24, 2026 at 10:01 AM, Jäsenasiat <jasenpalvelu@liitto.fi> wrote:"

VARIANTS = (
    # header-block clients: the notification below the block, not '>'-quoted
    Variant("outlook_en", "outlook_from_sent_block.eml",
            lambda top: f"{top}\n\nFrom: Jäsenasiat [mailto:{TOKEN_ADDRESS}]\nSent: November-24-26 10:01 AM\n"
                        f"To: Maija Virtanen\nSubject: {SUBJECT}\n\n{NOTE.text}"),
    Variant("outlook_fi", "outlook_from_sent_block.eml (labels of Outlook fi)",
            lambda top: f"{top}\n\n{FI_OUTLOOK_BLOCK}\n{NOTE.text}"),
    Variant("outlook_sv", "outlook_from_sent_block.eml (labels of Outlook sv)",
            lambda top: f"{top}\n\nFrån: {QUEUE}\nSkickat: den 24 november 2026 10:01\n"
                        f"Till: Maija Virtanen <maija.virtanen@liitto.fi>\nÄmne: SV: {SUBJECT}\n\n{NOTE.text}",
            subject=f"SV: {SUBJECT}"),
    Variant("outlook_de", "outlook_from_sent_block.eml (labels of Outlook de)",
            lambda top: f"{top}\n\nVon: {QUEUE}\nGesendet: Dienstag, 24. November 2026 10:01\n"
                        f"An: Maija Virtanen <maija.virtanen@liitto.fi>\nBetreff: {SUBJECT}\n\n{NOTE.text}",
            subject=f"AW: {SUBJECT}"),
    Variant("outlook_fi_original_message", "aol_original_message.eml (Outlook fi wording)",
            lambda top: f"{top}\n\n-----Alkuperäinen viesti-----\n{FI_OUTLOOK_BLOCK}\n{NOTE.text}"),
    Variant("outlook_underscore_separator", "Outlook for Windows/OWA/mobile: a line of 32 '_' above "
            "the From:/Sent: block (seen in public LKML mail, e.g. replies quoting 'linux-next: build failure')",
            lambda top: f"{top}\n\n{'_' * 32}\n{FI_OUTLOOK_BLOCK}\n{NOTE.text}"),
    Variant("aol_original_message", "aol_original_message.eml",
            lambda top: f"{top}\n\n\n\n-----Original Message-----\nFrom: {QUEUE}\nTo: Maija Virtanen "
                        f"<maija.virtanen@liitto.fi>\nSent: Tue, Nov 24, 2026 10:01 am\nSubject: {SUBJECT}\n\n\n"
                        f"{NOTE.text}",
            subject=f"Re: {SUBJECT}"),
    Variant("yahoo_original_message", "yahoo_original_message.eml",
            lambda top: f"{top}\n\n\n----- Original Message -----\nFrom: \"Jäsenasiat\" <jasenpalvelu@liitto.fi>\n"
                        f"To: maija.virtanen@liitto.fi\nCc:\nSent: Tuesday, November 24, 2026 10:01 AM\n"
                        f"Subject: {SUBJECT}\n\n{NOTE.text}",
            subject=f"Re: {SUBJECT}"),
    Variant("zimbra_original_message", "zimbra_comcast_original_message.eml",
            lambda top: f"{top}\n\n----- Original Message -----\nFrom: jasenpalvelu@liitto.fi\nTo: "
                        f"maija.virtanen@liitto.fi\nSent: Tuesday, November 24, 2026 10:01:00 AM\n"
                        f"Subject: {SUBJECT}\n\n{NOTE.text}",
            subject=f"Re: {SUBJECT}"),
    Variant("hotmail_quoted_header_block", "hotmail_quoted_header_block.eml",
            lambda top: f"\n{top}\n\n> Subject: {SUBJECT}\n> From: jasenpalvelu@liitto.fi\n> To: "
                        f"maija.virtanen@liitto.fi\n> Date: Tue, 24 Nov 2026 10:01:00 +0200\n>\n{quoted(NOTE.text)}",
            subject=f"RE: {SUBJECT}"),
    # "On ... wrote:" clients, '>'-quoted
    Variant("gmail_web", "gmail_web_on_wrote.eml",
            lambda top: f"{top}\n\n{GMAIL_EN}\n\n{quoted(NOTE.text)}", subject=f"Re: {SUBJECT}"),
    Variant("gmail_fi", "gmail_web_on_wrote.eml (Gmail fi wording)",
            lambda top: f"{top}\n\nti 24. marrask. 2026 klo 10.01 Jäsenasiat <jasenpalvelu@liitto.fi> kirjoitti:"
                        f"\n\n{quoted(NOTE.text)}"),
    Variant("gmail_android", "android_gmail_on_wrote.eml (attribution right under the text)",
            lambda top: f"{top}\nOn Nov 24, 2026 10:01 AM, \"Jäsenasiat\" <jasenpalvelu@liitto.fi> wrote:\n\n"
                        f"{quoted(NOTE.text)}",
            subject=f"Re: {SUBJECT}"),
    Variant("gmail_wrapped_attribution", "gmail_wrapped_attribution_bottom_post.eml (top-posted)",
            lambda top: f"{top}\n\nOn Tue, Nov 24, 2026 at 10:01 AM, Jäsenpalvelu – Lakineuvonta "
                        f"<lakineuvonta@liitto.fi>\nwrote:\n\n{quoted(NOTE.text)}",
            subject=f"Re: {SUBJECT}"),
    Variant("gmail_de_wrapped", "gmail_german_wrapped_schrieb.eml",
            lambda top: f"{top}\n\nAm Di., 24. Nov. 2026 um 10:01 Uhr schrieb Jäsenasiat <\n"
                        f"jasenpalvelu@liitto.fi>:\n\n{quoted(NOTE.text)}",
            subject=f"Re: {SUBJECT}"),
    Variant("gmail_sv", "gmail_danish_skrev_name.eml (Swedish words, same order)",
            lambda top: f"{top}\n\nDen tis 24 nov. 2026 kl 10:01 skrev Jäsenasiat <jasenpalvelu@liitto.fi>:\n\n"
                        f"{quoted(NOTE.text)}",
            subject=f"Re: {SUBJECT}"),
    Variant("apple_mail", "apple_mail_on_wrote.eml",
            lambda top: f"{top}\n\nOn Nov 24, 2026, at 10:01 AM, Jäsenasiat <jasenpalvelu@liitto.fi> wrote:\n\n"
                        f"{quoted(NOTE.text)}",
            subject=f"Re: {SUBJECT}"),
    Variant("mac_mail_quoted_attribution", "apple_mail_quoted_attribution.eml",
            lambda top: f"{top}\n> On 24 Nov 2026, at 10.01, Jäsenasiat <jasenpalvelu@liitto.fi> wrote:\n>\n"
                        f"{quoted(NOTE.text)}",
            subject=f"Re: {SUBJECT}"),
    Variant("iphone_en", "iphone_sent_from_my_iphone.eml",
            lambda top: f"{top}\n\nSent from my iPhone\n\nOn Nov 24, 2026, at 10:01 AM, Jäsenasiat "
                        f"<jasenpalvelu@liitto.fi> wrote:\n\n{quoted(NOTE.text)}",
            expected=lambda top: f"{top}\n\nSent from my iPhone", subject=f"Re: {SUBJECT}"),
    Variant("iphone_fi", "ios_mail_quoted_attribution.eml, with the attribution iPhone Mail (fi) writes: "
            "'NAME <addr> kirjoitti DATE kello TIME:' (public LKML mail "
            "<3D147284-AF8C-4414-9BE1-C83032B6C15D@gmail.com>)",
            lambda top: f"{top}\n\nLähetetty iPhonesta\n\n> Jäsenasiat <jasenpalvelu@liitto.fi> kirjoitti "
                        f"24.11.2026 kello 10.01:\n>\n{quoted(NOTE.text)}",
            expected=lambda top: f"{top}\n\nLähetetty iPhonesta"),
    Variant("thunderbird", "thunderbird_bottom_post.eml (top-posted)",
            lambda top: f"{top}\n\nOn 24.11.2026 10.01, Jäsenasiat wrote:\n{quoted(NOTE.text)}",
            subject=f"Re: {SUBJECT}"),
    Variant("thunderbird_bottom_post", "thunderbird_bottom_post.eml",
            lambda top: f"On 24.11.2026 10.01, Jäsenasiat wrote:\n{quoted(NOTE.text)}\n{top}",
            subject=f"Re: {SUBJECT}", top_posted=False),
    Variant("mutt_inline", "mutt_inline_reply.eml",
            lambda top: f"On Tue, Nov 24, 2026 at 10:01:00AM +0200, Jäsenasiat wrote:\n"
                        f"{quoted(NOTE.text.rsplit('Terveisin', 1)[0].rstrip())}\n\n{top}\n\n"
                        f"> Terveisin\n> Matti Meikäläinen\n",
            subject=f"Re: {SUBJECT}", top_posted=False),
    Variant("sparrow_signature", "sparrow_signature_before_quote.eml",
            lambda top: f"{top}\n\n-- \nJäsenpalvelu\nSent with Sparrow\n\n\nOn Tuesday, November 24, 2026 at "
                        f"10:01 AM, Jäsenasiat wrote:\n\n{quoted(NOTE.text)}",
            expected=lambda top: f"{top}\n\n-- \nJäsenpalvelu\nSent with Sparrow", subject=f"Re: {SUBJECT}"),
    Variant("google_inbox_signature_below", "gmail_inbox_signature_after_quote.eml",
            lambda top: f"{top}\n\nOn Tue, Nov 24, 2026 at 10:01 AM <jasenpalvelu@liitto.fi> wrote:\n\n"
                        f"{quoted(NOTE.text)}\n--\nMaija Virtanen, Jäsenpalvelu\n",
            subject=f"Re: {SUBJECT}"),
    # HTML only: parse_message reads the text out of the HTML
    Variant("blackberry_html", "blackberry_html_only.eml", subtype="html",
            body=lambda top: f'<html><head></head><body><div id="BB10_response_div">{html_lines(top)}</div>'
                             '<div id="_signaturePlaceholder"></div><table width="100%"><tbody><tr>'
                             '<td id="_persistentHeaderContainer"><div id="_persistentHeader">'
                             '<div><b>From: </b>Jäsenasiat</div><div><b>Sent: </b>Tuesday, November 24, 2026 10:01'
                             '</div><div><b>To: </b>maija.virtanen@liitto.fi</div><div><b>Reply To: </b>'
                             f'Jäsenasiat</div><div><b>Subject: </b>{html.escape(SUBJECT)}</div></div></td></tr>'
                             '</tbody></table><div id="_persistentHeaderEnd"></div><br><div id="_originalContent">'
                             f'{html_lines(NOTE.text)}</div></body></html>'),
    Variant("outlook_html_fi", "outlook_from_sent_block.eml (its HTML part, Outlook fi labels)", subtype="html",
            body=lambda top: '<html><head><style><!-- p.MsoNormal {margin:0cm;} --></style></head><body lang=FI>'
                             f'<div class=WordSection1>{html_mso(top)}<p class=MsoNormal><o:p>&nbsp;</o:p></p>'
                             f'<p class=MsoNormal><b>Lähettäjä:</b> {html.escape(QUEUE)} <br><b>Lähetetty:</b> '
                             'tiistai 24. marraskuuta 2026 10.01<br><b>Vastaanottaja:</b> Maija Virtanen<br>'
                             f'<b>Aihe:</b> {html.escape(SUBJECT)}<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;'
                             f'</o:p></p>{html_mso(NOTE.text)}</div></body></html>'),
    Variant("gmail_html", "gmail_web_on_wrote.eml (its HTML part)", subtype="html", subject=f"Re: {SUBJECT}",
            body=lambda top: f'<div dir="ltr">{html_divs(top)}</div><br><div class="gmail_quote">'
                             '<div dir="ltr" class="gmail_attr">On Tue, Nov 24, 2026 at 10:01 AM Jäsenasiat &lt;'
                             '<a href="mailto:jasenpalvelu@liitto.fi">jasenpalvelu@liitto.fi</a>&gt; wrote:<br></div>'
                             '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid '
                             f'rgb(204,204,204);padding-left:1ex">{html_lines(NOTE.text)}</blockquote></div>'),
    Variant("outlook_com_html", "outlook_com_html_only_date_first.eml", subtype="html", subject=f"RE: {SUBJECT}",
            body=lambda top: "<html><head><style><!--\n.hmmessage P\n{\nmargin:0px;\npadding:0px\n}\n--></style>"
                             f"</head><body class='hmmessage'><div dir='ltr'>{html_lines(top)}<br><br><div>"
                             '<hr id="stopSpelling">Date: Tue, 24 Nov 2026 10:01:00 +0200<br>Subject: '
                             f'{html.escape(SUBJECT)}<br>From: jasenpalvelu@liitto.fi<br>To: maija.virtanen@liitto.fi'
                             f'<br><br><div dir="ltr">{html_lines(NOTE.text)}</div></div></div></body></html>'),
    # forwards of the notification back into the ticket
    Variant("gmail_forward", "gmail_forward_fwd.eml", subject=f"Fwd: {SUBJECT}",
            body=lambda top: f"{top}\n\n---------- Forwarded message ---------\nFrom: {QUEUE}\nDate: Tue, Nov 24, "
                             f"2026 at 10:01 AM\nSubject: {SUBJECT}\nTo: Maija Virtanen <maija.virtanen@liitto.fi>"
                             f"\n\n\n{NOTE.text}"),
    Variant("outlook_forward_fi", "outlook_forward_fw.eml (Outlook fi labels)", subject=f"VL: {SUBJECT}",
            body=lambda top: f"{top}\n\n{FI_OUTLOOK_BLOCK}\n{NOTE.text}"),
)


def _variant_params(select: Callable[[Variant], bool]) -> list:
    return [pytest.param(variant, id=variant.name) for variant in VARIANTS if select(variant)]


def build(variant: Variant, top: str, subject: str | None = "") -> bytes:
    message = EmailMessage()
    message["From"] = "Maija Virtanen <maija.virtanen@liitto.fi>"
    message["To"] = TOKEN_ADDRESS
    subject = variant.subject if subject == "" else subject
    if subject is not None:
        message["Subject"] = subject
    message["Date"] = "Tue, 24 Nov 2026 10:05:00 +0200"
    message["Message-ID"] = f"<{variant.name}@liitto.fi>"
    message["In-Reply-To"] = NOTIFICATION_ID
    message["References"] = NOTIFICATION_ID
    message.set_content(variant.body(top), subtype=variant.subtype)
    return bytes(message)


def staff_text(variant: Variant, top: str = ANSWER):
    parsed, _ = parse_message(build(variant, top))
    return parse_staff_text(parsed.text, QUEUES, STAFF)


@pytest.mark.parametrize("variant", _variant_params(lambda v: True))
def test_the_internal_block_never_reaches_the_member(variant: Variant) -> None:
    answer = staff_text(variant).answer
    assert [line for line in INTERNAL_LINES if line in answer] == []
    assert MEMBER_TEXT not in answer


@pytest.mark.parametrize("variant", _variant_params(lambda v: True))
def test_the_answer_is_relayed_exactly(variant: Variant) -> None:
    staff = staff_text(variant)
    assert staff.commands == () and staff.errors == ()
    assert staff.answer == variant.expected(ANSWER)


@pytest.mark.parametrize("variant", _variant_params(lambda v: v.top_posted))
def test_commands_at_the_top_are_obeyed_and_not_relayed(variant: Variant) -> None:
    plain = staff_text(variant)
    staff = staff_text(variant, f"#take\n#priority high\n\n{ANSWER}")
    assert staff.commands == (Command("take"), Command("priority", "high")) and staff.errors == ()
    assert staff.answer == plain.answer
    note = staff_text(variant, "#note\nSoitin jäsenelle, asia selvä.")
    assert note.commands == (Command("note"),) and note.answer.startswith("Soitin jäsenelle, asia selvä.")


@pytest.mark.parametrize("variant", _variant_params(lambda v: v.top_posted and v.subtype == "plain"))
def test_a_bad_command_is_reported_in_every_shape(variant: Variant) -> None:
    staff = staff_text(variant, f"#close now\n\n{ANSWER}")
    assert staff.commands == () and "takes no value" in staff.errors[0]


MOBILE_SIGNATURES = (
    "Sent from my iPhone",  # iphone_sent_from_my_iphone.eml
    "Lähetetty iPhonesta",  # iPhone Mail (fi), public LKML mail <3D147284-AF8C-4414-9BE1-C83032B6C15D@gmail.com>
    "Get Outlook for iOS<https://outlook.com/mobile>",  # outlook_ios_get_outlook_signature.eml
)


@pytest.mark.parametrize("signature", MOBILE_SIGNATURES)
def test_a_command_from_a_phone_relays_nothing(signature: str) -> None:
    variant = Variant("phone", "iphone_sent_from_my_iphone.eml",
                      lambda top: f"{top}\n\n{signature}\n\n{GMAIL_EN}\n\n{quoted(NOTE.text)}")
    staff = staff_text(variant, "#close")
    assert staff.commands == (Command("close"),)
    assert staff.answer == ""


# --- 3. Subjects: replies, forwards, dropped and changed subjects -----------------------------

SUBJECTS = (
    # (subject as the client sends it, tags of ours, subject without prefixes)
    (f"VS: {SUBJECT}", (12,), SUBJECT),  # Outlook fi reply
    (f"VL: {SUBJECT}", (12,), SUBJECT),  # Outlook fi forward
    (f"SV: {SUBJECT}", (12,), SUBJECT),  # Outlook sv reply
    (f"VB: {SUBJECT}", (12,), SUBJECT),  # Outlook sv forward (Vidarebefordra)
    (f"AW: {SUBJECT}", (12,), SUBJECT),  # Outlook de reply
    (f"WG: {SUBJECT}", (12,), SUBJECT),  # Outlook de forward
    (f"RE: {SUBJECT}", (12,), SUBJECT),  # Outlook en, Hotmail (hotmail_quoted_header_block.eml)
    (f"FW: {SUBJECT}", (12,), SUBJECT),  # Outlook en forward (outlook_forward_fw.eml)
    (f"Fwd: {SUBJECT}", (12,), SUBJECT),  # Gmail forward (gmail_forward_fwd.eml)
    (f"Tr: {SUBJECT}", (12,), SUBJECT),  # Outlook fr forward
    (f"Re[2]: {SUBJECT}", (12,), SUBJECT),  # The Bat!, old Outlook Express add-ons
    (f"Re: VS: Vs: VL: {SUBJECT}", (12,), SUBJECT),  # nested, mixed clients
    (f"VS:{SUBJECT}", (12,), SUBJECT),  # no space after the colon
    (f"Re: [Discourse Meta] {SUBJECT}", (12,), f"[Discourse Meta] {SUBJECT}"),  # beside another system's tag
    (f"VS: [EXT] {SUBJECT}", (12,), f"[EXT] {SUBJECT}"),  # a gateway's marker first
    ("VS: [jp#12] Uusi tiketti", (12,), "[jp#12] Uusi tiketti"),  # a client that lower-cases
    ("Re: Eroaminen liitosta[JP#12]", (12,), "Eroaminen liitosta[JP#12]"),  # tag glued to text
    ("Lisätietoa eroamisesta [JP#12]", (12,), "Lisätietoa eroamisesta [JP#12]"),  # changed, tag kept
    ("VS: Uusi tiketti: Eroaminen liitosta", (), "Uusi tiketti: Eroaminen liitosta"),  # tag deleted
    ("Eroamisen käsittely", (), "Eroamisen käsittely"),  # changed subject
    ("", (), ""),  # dropped subject
    ("VS: [JP#12] [JP#9] yhdistetty", (12, 9), "[JP#12] [JP#9] yhdistetty"),  # two of ours, in order
    ("VS: [XJP#12] [JP#0] muu järjestelmä", (), "[XJP#12] [JP#0] muu järjestelmä"),  # not ours
)


@pytest.mark.parametrize(("subject", "tags", "stripped"), SUBJECTS, ids=lambda value: str(value)[:40])
def test_subject_tags_and_prefixes(subject: str, tags: tuple[int, ...], stripped: str) -> None:
    assert threader.subject_tags(subject, "JP") == tags
    assert threader.strip_prefixes(subject) == stripped


@pytest.mark.parametrize("subject", [f"VS: {SUBJECT}", "Eroamisen käsittely", None],
                         ids=["tagged", "changed", "dropped"])
@pytest.mark.parametrize("variant", _variant_params(lambda v: v.name in ("outlook_fi", "gmail_web", "iphone_en",
                                                                          "outlook_html_fi")))
def test_a_reply_threads_whatever_its_subject(variant: Variant, subject: str | None) -> None:
    parsed, _ = parse_message(build(variant, ANSWER, subject))
    keys = threader.keys(parsed, Envelope("smtp", "maija.virtanen@liitto.fi", (TOKEN_ADDRESS,)), "JP",
                         frozenset({"jasenpalvelu@liitto.fi", "lakineuvonta@liitto.fi"}))
    assert keys.tokens == ("t0k3n",)  # the secret reply address: threads even with no subject at all
    assert keys.referenced[0] == NOTIFICATION_ID.strip("<>")
    assert keys.tags == ((12,) if subject and "[JP#12]" in subject else ())
    assert parse_staff_text(parsed.text, QUEUES, STAFF).answer == variant.expected(ANSWER)

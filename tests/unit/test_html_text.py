"""HTML-only mail laid out as a mail client shows it (what quote cutting and relaying read)."""

from __future__ import annotations

import pytest

from maild.core.html_text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        # Gmail: a <div> per line, <div><br></div> for an empty line
        ("<div dir=ltr><div>Hei Matti,</div><div><br></div><div>asia on hoidossa.</div></div>",
         "Hei Matti,\n\nasia on hoidossa."),
        # Outlook: <p class=MsoNormal> has no margin; an empty line is a paragraph of &nbsp;
        ("<p class=MsoNormal>Hei Matti,<o:p></o:p></p>\n<p class=MsoNormal><o:p>&nbsp;</o:p></p>\n"
         "<p class=MsoNormal>asia on\nhoidossa.<o:p></o:p></p>", "Hei Matti,\n\nasia on hoidossa."),
        # other paragraphs keep their margin, once
        ("<p>Yksi</p><p>Kaksi</p><p>&nbsp;</p><p>Kolme</p>", "Yksi\n\nKaksi\n\nKolme"),
        # <br> ends a line; source line breaks are spaces; &nbsp; inside text is a space
        ("Rivi 1<br>Rivi\n2<br><br>Rivi&nbsp;3", "Rivi 1\nRivi 2\n\nRivi 3"),
        # <pre> keeps its lines and indentation
        ("<pre>a\n  b</pre>c", "a\n  b\n\nc"),
        # scripts, styles and the head are not text
        ("<html><head><title>T</title><style>p{}</style></head><body>Hei<script>x()</script></body></html>", "Hei"),
    ],
)
def test_layout(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_blockquotes_are_quoted_like_a_plain_text_reply() -> None:
    html = ('<div>Kiitos!</div><div class="gmail_quote"><div class="gmail_attr">On Tue, Nov 24, 2026 Matti '
            '&lt;matti@example.fi&gt; wrote:<br></div><blockquote type="cite">Rivi 1<br>Rivi 2<br><br>'
            '<blockquote>Vanhempi</blockquote></blockquote></div>')
    assert html_to_text(html).split("\n")[:7] == [
        "Kiitos!", "On Tue, Nov 24, 2026 Matti <matti@example.fi> wrote:", "", "> Rivi 1", "> Rivi 2", ">",
        ">> Vanhempi"]

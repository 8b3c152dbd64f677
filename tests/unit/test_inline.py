"""Pictures of a staff answer: which go inline, and the HTML that shows them (docs/mail.md#inline-images)."""

from __future__ import annotations

import pytest

from maild.core.inline import Choice, Image, answer_html, choose

SHOT = Image("image001.png@01DB4A2E.5C9F1A40", "image001.png")
LOGO = Image("image002.png@01DB4A2E.5C9F1A40", "image002.png")
QUOTED = Image("ii_m3x9@quoted", "kaavio.png")


@pytest.mark.parametrize(("answer", "html", "expected"), [
    # Outlook: markers in its text version; the quotation's picture is in the HTML below its border
    ("Hei,\n[cid:image001.png@01DB4A2E.5C9F1A40]\nMaija\n[cid:image002.png@01DB4A2E.5C9F1A40]",
     '<p>Hei</p><img src="cid:image001.png@01DB4A2E.5C9F1A40"><img src="cid:image002.png@01DB4A2E.5C9F1A40">'
     '<div style="border:none;border-top:solid #E1E1E1 1.0pt"><img src="cid:ii_m3x9@quoted"></div>',
     Choice((SHOT.content_id, LOGO.content_id), (QUOTED.content_id,))),
    # Gmail: "[image: name]" markers
    ("Tässä kuva:\n[image: image001.png]\nMaija", '<div>Tässä kuva:<img src="cid:image001.png@01DB4A2E.5C9F1A40"></div>'
     '<div class="gmail_quote"><img src=cid:ii_m3x9@quoted></div>',
     Choice((SHOT.content_id,), (QUOTED.content_id,))),
    # Thunderbird: no markers; the pictures of the HTML above its quotation
    ("Tässä kuva.\nMaija", "<p>Tässä kuva.</p><img src='cid:image001.png@01DB4A2E.5C9F1A40'>"
     '<div class="moz-cite-prefix">Jäsenasiat kirjoitti:</div><blockquote type="cite"><img src="cid:ii_m3x9@quoted">',
     Choice((SHOT.content_id,), (QUOTED.content_id,))),
    # a picture no HTML shows is an ordinary attachment; a marker of an unknown picture changes nothing
    ("Lomake liitteenä. [cid:tuntematon@x]", None, Choice((), ())),
])
def test_choose(answer: str, html: str | None, expected: Choice) -> None:
    assert choose(answer, html, [SHOT, LOGO, QUOTED]) == expected


def test_answer_html_puts_pictures_at_their_markers_and_the_rest_below() -> None:
    page = answer_html("Hei <Matti> & co,\nkatso: [cid:image001.png@01DB4A2E.5C9F1A40] tästä\n[image: puuttuu.png]",
                       [SHOT, LOGO])

    assert "Hei &lt;Matti&gt; &amp; co,<br>" in page
    assert 'katso: <img src="cid:image001.png@01DB4A2E.5C9F1A40" alt="image001.png"' in page
    assert "[image: puuttuu.png]" in page  # no such picture: the marker stays as text
    assert page.index('cid:image002.png') > page.index("puuttuu")  # unmarked: below the text
    assert page.count("<img") == 2


def test_markup_in_a_file_name_or_content_id_is_escaped() -> None:
    page = answer_html("x", [Image('a"onerror="x@y', '<script>.png')])

    assert "<script>" not in page and 'a&quot;onerror=&quot;x@y' in page


@pytest.mark.timeout(120)
@pytest.mark.parametrize("unit", [" ", "src=", 'src= "', "[cid:", "[image: ", "border-top: ", "<blockquote"])
def test_pictures_are_found_in_linear_time(unit: str) -> None:
    """A staff reply is mail like any other: a long run of one shape must not hold up the rest
    (``src=`` and a million spaces took minutes before the patterns were possessive)."""
    from tests.unit.test_linear_time import assert_linear

    def work(text: str) -> None:
        choose(text, "src=" + text, [SHOT, LOGO])
        answer_html(text, [SHOT])

    assert_linear(work, unit, 1 << 17)

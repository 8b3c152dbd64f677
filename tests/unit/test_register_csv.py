"""Reading member register exports (docs/coming.md#member-register): the messy files real register systems write."""

from __future__ import annotations

import codecs

import pytest

from maild.core.register import RegisterError, read_register

HEADER = "Jäsennumero;Sukunimi;Etunimi;Sähköposti;Osasto;maksettu\n"


def rows(text: str | bytes, key: str = "email") -> tuple[list[tuple[int, str | None, str | None]], list[str]]:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    register = read_register(data, key)  # type: ignore[arg-type]
    return [(r.line, r.member_number, r.email) for r in register.rows], [str(p) for p in register.problems]


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (codecs.BOM_UTF8 + (HEADER + "1;Mäkinen;Äijä;AIJA@Example.fi ;Tampereen osasto;kyllä\n").encode("utf-8"), "utf-8-sig"),
        ((HEADER + "1;Mäkinen;Äijä;AIJA@Example.fi ;Tampereen osasto;kyllä\n").encode("utf-8"), "utf-8"),
        ((HEADER + "1;Mäkinen;Äijä;AIJA@Example.fi ;Tampereen osasto;kyllä\n").encode("cp1252"), "cp1252"),
        ((HEADER + "1;Mäkinen;Äijä;AIJA@Example.fi ;Tampereen osasto;kyllä\n").encode("utf-16"), "utf-16"),
        ((HEADER + "1;Mäkinen;Äijä;AIJA@Example.fi ;Tampereen osasto;kyllä\n").replace("\n", "\r\n").encode("cp1252"), "cp1252"),
    ],
    ids=["utf8-bom", "utf8", "cp1252", "utf16", "cp1252-crlf"],
)
def test_encodings_are_detected_and_the_bom_is_not_part_of_the_first_column(data: bytes, encoding: str) -> None:
    register = read_register(data)
    assert register.encoding == encoding
    assert register.problems == []
    (row,) = register.rows
    assert (row.member_number, row.email) == ("1", "aija@example.fi")
    assert row.fields == {"Sukunimi": "Mäkinen", "Etunimi": "Äijä", "Osasto": "Tampereen osasto", "maksettu": "kyllä"}


def test_cp1252_bytes_undefined_there_still_read() -> None:
    data = HEADER.encode("cp1252") + b"1;M\x81kinen;A;a@example.fi;T;ei\n"
    register = read_register(data)
    assert register.encoding == "latin-1"
    assert register.rows[0].fields["Sukunimi"] == "M\x81kinen"


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [("email,member_number,Osasto\n", ","), ("email;member_number;Osasto\n", ";"), ("email\tmember_number\tOsasto\n", "\t"),
     ('"email";"member_number";"Osasto, piiri"\n', ";"), ('"email","member_number","Osasto; piiri"\n', ",")],
)
def test_the_separator_is_sniffed_from_the_header(header: str, delimiter: str) -> None:
    line = delimiter.join(["a@example.fi", "7", "Oulun osasto"]) + "\n"
    register = read_register((header + line).encode())
    assert register.delimiter == delimiter
    assert [(r.member_number, r.email) for r in register.rows] == [("7", "a@example.fi")]


def test_column_names_are_case_insensitive_and_trimmed() -> None:
    found, problems = rows(" SÄHKÖPOSTI ; JäsenNumero ;Osasto\nb@example.fi;8;X\n")
    assert found == [(2, "8", "b@example.fi")] and problems == []


def test_quoted_newlines_keep_physical_line_numbers() -> None:
    text = (HEADER
            + '1;Virtanen;Matti;m@example.fi;"Tampereen\nosasto";kyllä\n'   # lines 2-3
            + '2;Laine;"Anna\n\nMaria";a@example.fi;Oulu;ei\n'               # lines 4-6
            + '3;Koski;"Jussi"x;j@example.fi;Oulu;ei\n'                      # line 7: bad quoting
            + "4;Niemi;Pia;p@example.fi;Turku;kyllä\n")                      # line 8
    register = read_register(text.encode())
    assert [(r.line, r.member_number) for r in register.rows] == [(2, "1"), (4, "2"), (8, "4")]
    assert register.rows[0].fields["Osasto"] == "Tampereen\nosasto"
    assert [(p.line, p.kind) for p in register.problems] == [(7, "unreadable")]


def test_an_unclosed_quote_does_not_swallow_the_rest_of_the_file() -> None:
    text = (HEADER
            + "1;Virtanen;Matti;m@example.fi;Tampere;kyllä\n"
            + '2;"Laine;Anna;a@example.fi;Oulu;ei\n'                          # line 3: never closed
            + "3;Koski;Jussi;j@example.fi;Oulu;ei\n"
            + "4;Niemi;Pia;p@example.fi;Turku;kyllä\n")
    found, problems = rows(text)
    assert found == [(2, "1", "m@example.fi"), (4, "3", "j@example.fi"), (5, "4", "p@example.fi")]
    assert problems == ["line 3: cannot be read: a quote is not closed"]


def test_a_stray_quote_pairing_with_a_later_one_is_one_bad_row() -> None:
    text = (HEADER
            + '1;"Virtanen;Matti;m@example.fi;Tampere;kyllä\n'                  # line 2: opens a quote
            + "2;Laine;Anna;a@example.fi;Oulu;ei\n"
            + '3;Koski;Jussi";j@example.fi;Oulu;ei\n'                          # line 4: a stray quote closes it
            + "4;Niemi;Pia;p@example.fi;Turku;kyllä\n")
    found, problems = rows(text)
    assert (3, "2", "a@example.fi") in found and (5, "4", "p@example.fi") in found
    assert problems[0].startswith("line 2: cannot be read")


def test_rows_with_the_wrong_number_of_columns_are_reported_and_trailing_separators_ignored() -> None:
    text = HEADER + "1;A;B;a@example.fi;T;ei;;\n" + "2;A;b@example.fi;T;ei\n" + "3;A;B;c@example.fi;T;ei;extra\n"
    found, problems = rows(text)
    assert found == [(2, "1", "a@example.fi")]
    assert problems == ["line 3: cannot be read: 5 columns, the header has 6",
                        "line 4: cannot be read: 7 columns, the header has 6"]


def test_a_nul_byte_makes_a_row_unreadable() -> None:
    found, problems = rows(HEADER + "1;A\x00;B;a@example.fi;T;ei\n2;A;B;b@example.fi;T;ei\n")
    assert found == [(3, "2", "b@example.fi")]
    assert problems == ["line 2: cannot be read: it contains a NUL character"]


def test_duplicate_addresses_the_later_row_wins_and_the_earlier_is_reported() -> None:
    text = HEADER + "1;A;B;same@example.fi;T;ei\n2;C;D;other@example.fi;T;ei\n3;E;F;SAME@example.fi;T;kyllä\n"
    register = read_register(text.encode())
    assert [(r.line, r.member_number, r.email) for r in register.rows] == [(3, "2", "other@example.fi"), (4, "3", "same@example.fi")]
    assert [str(p) for p in register.problems] == ["line 2: address same@example.fi again on line 4: the later row wins"]
    assert register.rows[1].fields["maksettu"] == "kyllä"


def test_a_member_number_on_two_addresses_stays_with_the_later_row() -> None:
    text = HEADER + "5;A;B;a@example.fi;T;ei\n5;C;D;b@example.fi;T;ei\n"
    found, problems = rows(text)
    assert found == [(2, None, "a@example.fi"), (3, "5", "b@example.fi")]
    assert problems == ["line 2: member number 5 again on line 3: the later row keeps it"]


@pytest.mark.parametrize(
    ("line", "expected_rows", "problem"),
    [
        ("9;A;B;;T;ei\n", [(2, "9", None)], "line 2: no address: member 9 can be linked by member number only"),
        (";A;B;  ;T;ei\n", [], "line 2: neither an address nor a member number: the row is skipped"),
        ("9;A;B;not an address;T;ei\n", [], "line 2: 'not an address' is not an email address: the row is skipped"),
    ],
    ids=["number-only", "neither", "invalid"],
)
def test_rows_without_a_usable_address(line: str, expected_rows: list, problem: str) -> None:
    found, problems = rows(HEADER + line)
    assert found == expected_rows
    assert problems == [problem]


def test_keyed_by_member_number() -> None:
    text = HEADER + "1;A;B;a@example.fi;T;ei\n1;A;B;a2@example.fi;T;ei\n;A;B;c@example.fi;T;ei\n2;X;Y;;T;ei\n"
    found, problems = rows(text, key="member_number")
    assert found == [(3, "1", "a2@example.fi"), (5, "2", None)]
    assert problems == ["line 2: member number 1 again on line 3: the later row wins",
                        "line 4: no member number: the row is skipped (--key member_number)"]


def test_blank_lines_are_skipped_silently() -> None:
    found, problems = rows(HEADER + "\n1;A;B;a@example.fi;T;ei\n;;;;;\n\n")
    assert found == [(3, "1", "a@example.fi")] and problems == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("Nimi;Osasto\nA;B\n", "no address column"),
        ("email;Osasto;osasto\n", "appears twice"),
    ],
)
def test_files_that_are_no_register_are_refused(text: str, message: str) -> None:
    with pytest.raises(RegisterError, match=message):
        read_register(text.encode())


def test_an_unknown_key_is_refused() -> None:
    with pytest.raises(RegisterError, match="--key"):
        read_register(b"email\n", "name")  # type: ignore[arg-type]

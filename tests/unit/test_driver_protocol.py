"""The driver protocol's sans-IO part (lab.sandbox.protocol): lines, requests and responses, strictly.

Every reader is fed whole, a byte at a time, and with trailing data; every validation error is
asserted with its exact message, so a program's author can act on it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lab.sandbox import protocol as proto
from lab.sandbox.protocol import (Ack, Close, Connect, Failure, Hello, HelloReply, LineReader, ProtocolViolation,
                                  Received, Recv, Send)

REQUESTS = [Hello(), Connect("toxiproxy", 7000), Send(b"\x00\x00\x00\x1b\x02" + bytes(range(256))), Recv(), Close()]
ENCODED_REQUESTS = [
    b'{"op":"hello","protocol":1}\n',
    b'{"op":"connect","host":"toxiproxy","port":7000}\n',
    b'{"op":"send","data":"' + base64.b64encode(b"\x00\x00\x00\x1b\x02" + bytes(range(256))) + b'"}\n',
    b'{"op":"recv"}\n',
    b'{"op":"close"}\n',
]


def test_constants_are_the_spec_s() -> None:
    assert (proto.PROTOCOL_VERSION, proto.MAX_LINE, proto.MAX_MESSAGE_CHARS) == (1, 4 * 1024 * 1024, 1000)
    # The largest send and recv lines fit in MAX_LINE, with room to spare for the JSON around the data.
    assert proto.MAX_DATA == 3145680
    assert len(proto.encode_request(Send(b"x" * proto.MAX_DATA))) == 4194264 <= proto.MAX_LINE
    assert len(proto.encode_response(Received(b"x" * proto.MAX_DATA))) == 4194262 <= proto.MAX_LINE


# Lines --------------------------------------------------------------------------------------------------
STREAM = b"".join(ENCODED_REQUESTS)


def test_lines_whole() -> None:
    reader = LineReader()
    assert reader.feed(STREAM) == [line[:-1] for line in ENCODED_REQUESTS]
    assert (reader.buffered, reader.lines_read) == (0, 5)


def test_lines_a_byte_at_a_time() -> None:
    reader = LineReader()
    lines = [line for i in range(len(STREAM)) for line in reader.feed(STREAM[i:i + 1])]
    assert lines == [line[:-1] for line in ENCODED_REQUESTS]
    assert reader.buffered == 0


def test_lines_keep_trailing_data() -> None:
    reader = LineReader()
    assert reader.feed(ENCODED_REQUESTS[0] + b'{"op":"re') == [ENCODED_REQUESTS[0][:-1]]
    assert reader.buffered == 9
    assert reader.next_line() is None
    assert reader.feed(b'cv"}\n{') == [b'{"op":"recv"}']
    assert reader.buffered == 1


def test_an_empty_line_is_a_line() -> None:
    assert LineReader().feed(b"\n\n") == [b"", b""]


def test_a_line_of_exactly_max_line_bytes_is_accepted() -> None:
    reader = LineReader(max_line=10)
    assert reader.feed(b"123456789\n") == [b"123456789"]


def test_a_too_long_line_is_refused_when_its_newline_comes() -> None:
    reader = LineReader(max_line=10)
    with pytest.raises(ProtocolViolation) as info:
        reader.feed(b"1234567890\n")
    assert str(info.value) == "a line of 11 bytes (newline included); the driver protocol allows at most 10"
    # The reader stays broken.
    with pytest.raises(ProtocolViolation, match="a line of 11 bytes"):
        reader.feed(b"\n")
    with pytest.raises(ProtocolViolation, match="a line of 11 bytes"):
        reader.next_line()


def test_a_too_long_line_is_refused_before_its_newline_a_byte_at_a_time() -> None:
    reader = LineReader(max_line=10)
    for byte in b"123456789":
        assert reader.feed(bytes([byte])) == []
    with pytest.raises(ProtocolViolation) as info:
        reader.feed(b"0")
    assert str(info.value) == "a line of at least 11 bytes (newline included); the driver protocol allows at most 10"


def test_the_default_limit_is_max_line() -> None:
    reader = LineReader()
    assert reader.feed(b"x" * (proto.MAX_LINE - 1)) == []
    with pytest.raises(ProtocolViolation, match=f"at least {proto.MAX_LINE + 1} bytes"):
        reader.feed(b"x")


def test_a_reader_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="max_line must be a positive int; got 0"):
        LineReader(max_line=0)


# Requests ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("request_", "line"), list(zip(REQUESTS, ENCODED_REQUESTS)))
def test_requests_round_trip(request_: proto.Request, line: bytes) -> None:
    assert proto.encode_request(request_) == line
    assert proto.decode_request(line[:-1]) == request_


def test_requests_decode_from_a_stream_fed_a_byte_at_a_time_with_trailing_data() -> None:
    reader = LineReader()
    got = [proto.decode_request(line) for i in range(len(STREAM)) for line in reader.feed(STREAM[i:i + 1])]
    got += [proto.decode_request(line) for line in reader.feed(b'{"op":"hel')]
    assert got == REQUESTS and reader.buffered == 10


BAD_REQUESTS: list[tuple[Any, str]] = [
    ([], "a request is a JSON object; got list"),
    ({}, "unknown op None; accepted: hello, connect, send, recv, close"),
    ({"op": "shutdown"}, "unknown op 'shutdown'; accepted: hello, connect, send, recv, close"),
    ({"op": "hello"}, "hello request: missing protocol; accepted fields: op, protocol"),
    ({"op": "hello", "protocol": 1, "name": "x"}, "hello request: unexpected 'name'; accepted fields: op, protocol"),
    ({"op": "hello", "protocol": 2}, "hello: protocol 2 is not supported; accepted: 1"),
    ({"op": "hello", "protocol": True}, "hello: protocol True is not supported; accepted: 1"),
    ({"op": "connect", "host": "h"}, "connect request: missing port; accepted fields: host, op, port"),
    ({"op": "connect", "host": "", "port": 1}, "connect: host must be a string of 1 to 253 characters; got ''"),
    ({"op": "connect", "host": 7, "port": 1}, "connect: host must be a string of 1 to 253 characters; got 7"),
    ({"op": "connect", "host": "h", "port": 0}, "connect: port must be an int from 1 to 65535; got 0"),
    ({"op": "connect", "host": "h", "port": 65536}, "connect: port must be an int from 1 to 65535; got 65536"),
    ({"op": "connect", "host": "h", "port": "7000"}, "connect: port must be an int from 1 to 65535; got '7000'"),
    ({"op": "send"}, "send request: missing data; accepted fields: data, op"),
    ({"op": "send", "data": 5}, "send request: data must be a base64 string; got int"),
    ({"op": "send", "data": "AAA"}, "send request: data is not standard base64 (A-Z a-z 0-9 + /, '=' padding): "
                                    "Incorrect padding"),
    ({"op": "send", "data": "AA-_"}, "send request: data is not standard base64 (A-Z a-z 0-9 + /, '=' padding): "
                                     "Only base64 data is allowed"),
    ({"op": "recv", "x": 1}, "recv request: unexpected 'x'; accepted fields: op"),
    ({"op": "close", "how": "now"}, "close request: unexpected 'how'; accepted fields: op"),
]


@pytest.mark.parametrize(("obj", "message"), BAD_REQUESTS)
def test_bad_requests_are_refused_saying_what_is_accepted(obj: Any, message: str) -> None:
    with pytest.raises(ProtocolViolation) as info:
        proto.parse_request(obj)
    assert str(info.value) == message


@pytest.mark.parametrize(("line", "message"), [
    (b"not json", "a line that is not one JSON object: Expecting value: line 1 column 1 (char 0)"),
    (b"[1]", "a line holding a JSON list, not an object"),
    (b'{"op":"recv","op":"recv"}', "key 'op' appears twice in one object"),
    (b'{"op":"connect","host":"h","port":NaN}', "NaN is not JSON"),
    (b'{"op":"\xff"}', "a line that is not UTF-8 (invalid start byte at byte 7)"),
    (b"[" * 100000 + b"]" * 100000, "a line nested too deeply to be a driver message"),
])
def test_lines_that_are_not_one_json_object_are_refused(line: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation) as info:
        proto.decode_request(line)
    assert str(info.value) == message


def test_request_encoders_refuse_what_the_program_would_refuse() -> None:
    with pytest.raises(ValueError, match="connect: port must be an int from 1 to 65535; got 0"):
        proto.encode_request(Connect("h", 0))
    with pytest.raises(ValueError, match=f"a {proto.MAX_DATA + 1}-byte message exceeds MAX_DATA"):
        proto.encode_request(Send(b"x" * (proto.MAX_DATA + 1)))
    with pytest.raises(TypeError, match="not a driver request"):
        proto.encode_request("recv")  # type: ignore[arg-type]


# Responses --------------------------------------------------------------------------------------------
RESPONSES: list[tuple[str, proto.Response, bytes]] = [
    ("hello", HelloReply("fixed", 1024), b'{"ok":true,"protocol":1,"framing":"fixed","msglen":1024}\n'),
    ("hello", HelloReply("length-prefixed"), b'{"ok":true,"protocol":1,"framing":"length-prefixed"}\n'),
    ("connect", Ack(), b'{"ok":true}\n'),
    ("send", Ack(), b'{"ok":true}\n'),
    ("recv", Received(b"\x00\x00\x00\x08\x03abcdefgh"), b'{"ok":true,"data":"AAAACANhYmNkZWZnaA=="}\n'),
    ("close", Ack(), b'{"ok":true}\n'),
    ("recv", Failure("ConnectionResetError", "ECONNRESET", "[Errno 104] Connection reset by peer"),
     b'{"ok":false,"error":"ConnectionResetError","errno":"ECONNRESET",'
     b'"message":"[Errno 104] Connection reset by peer"}\n'),
    ("hello", Failure("ImportTimeout", None, "never finished", "import"),
     b'{"ok":false,"error":"ImportTimeout","errno":null,"message":"never finished","phase":"import"}\n'),
]


@pytest.mark.parametrize(("op", "response", "line"), RESPONSES)
def test_responses_round_trip(op: str, response: proto.Response, line: bytes) -> None:
    assert proto.encode_response(response) == line
    assert proto.decode_response(op, line[:-1]) == response


def test_responses_decode_from_a_stream_fed_a_byte_at_a_time_with_trailing_data() -> None:
    stream = b"".join(line for _, _, line in RESPONSES) + b'{"ok":tr'
    reader = LineReader()
    lines = [line for i in range(len(stream)) for line in reader.feed(stream[i:i + 1])]
    assert [proto.decode_response(op, line) for (op, _, _), line in zip(RESPONSES, lines)] == \
           [response for _, response, _ in RESPONSES]
    assert reader.buffered == 8


def test_the_spec_s_own_examples_decode() -> None:
    assert proto.decode_response("recv", b'{"ok": false, "error": "ConnectionResetError", "errno": "ECONNRESET", '
                                         b'"message": "peer reset"}') == \
        Failure("ConnectionResetError", "ECONNRESET", "peer reset")
    assert proto.decode_response("hello", b'{"ok": true, "protocol": 1, "framing": "fixed", "msglen": 32}') == \
        HelloReply("fixed", 32)


def test_a_failure_needs_only_its_error() -> None:
    assert proto.parse_response("send", {"ok": False, "error": "my.pkg.Broken"}) == Failure("my.pkg.Broken")


def test_errno_aliases_linux_defines_are_accepted() -> None:
    assert proto.parse_response("recv", {"ok": False, "error": "OSError", "errno": "EWOULDBLOCK"}).errno == \
        "EWOULDBLOCK"  # type: ignore[union-attr]


def test_a_long_message_is_cut_to_1000_characters() -> None:
    got = proto.parse_response("recv", {"ok": False, "error": "OSError", "message": "é" * 5000})
    assert isinstance(got, Failure) and got.message == "é" * 1000
    line = proto.encode_response(Failure("OSError", None, "x" * 5000))
    assert json.loads(line)["message"] == "x" * 1000


BAD_RESPONSES: list[tuple[str, Any, str]] = [
    ("recv", [], "recv response: a JSON object is expected; got list"),
    ("recv", {}, "recv response: \"ok\" must be true or false; got None"),
    ("recv", {"ok": 1}, "recv response: \"ok\" must be true or false; got 1"),
    ("hello", {"ok": True, "protocol": 1}, "hello response: missing framing; accepted fields: framing, ok, protocol "
                                           "(optionally msglen)"),
    ("hello", {"ok": True, "protocol": 2, "framing": "length-prefixed"},
     "hello reply: protocol 2; the judge speaks 1"),
    ("hello", {"ok": True, "protocol": 1, "framing": "lines"},
     "hello reply: framing 'lines'; accepted: fixed, length-prefixed"),
    ("hello", {"ok": True, "protocol": 1, "framing": "fixed"},
     "hello reply: framing 'fixed' needs msglen, an int from 29 to 1048576; got None"),
    ("hello", {"ok": True, "protocol": 1, "framing": "fixed", "msglen": 28},
     "hello reply: framing 'fixed' needs msglen, an int from 29 to 1048576; got 28"),
    ("hello", {"ok": True, "protocol": 1, "framing": "fixed", "msglen": 1048577},
     "hello reply: framing 'fixed' needs msglen, an int from 29 to 1048576; got 1048577"),
    ("hello", {"ok": True, "protocol": 1, "framing": "fixed", "msglen": 1024.0},
     "hello reply: framing 'fixed' needs msglen, an int from 29 to 1048576; got 1024.0"),
    ("hello", {"ok": True, "protocol": 1, "framing": "fixed", "msglen": None},
     "hello response: msglen, when given, is an int; got null"),
    ("hello", {"ok": True, "protocol": 1, "framing": "length-prefixed", "msglen": 1024},
     "hello reply: msglen is only for framing 'fixed'; got msglen 1024 with 'length-prefixed'"),
    ("hello", {"ok": True, "protocol": 1, "framing": "fixed", "msglen": 64, "name": "x"},
     "hello response: unexpected 'name'; accepted fields: framing, ok, protocol (optionally msglen)"),
    ("connect", {"ok": True, "data": "AA=="}, "connect response: unexpected 'data'; accepted fields: ok"),
    ("send", {"ok": True, "extra": 1}, "send response: unexpected 'extra'; accepted fields: ok"),
    ("recv", {"ok": True}, "recv response: missing data; accepted fields: data, ok"),
    ("recv", {"ok": True, "data": None}, "recv response: data must be a base64 string; got NoneType"),
    ("recv", {"ok": True, "data": "A"}, "recv response: data is not standard base64 (A-Z a-z 0-9 + /, '=' padding): "
                                        "Invalid base64-encoded string: number of data characters (1) cannot be 1 "
                                        "more than a multiple of 4"),
    ("recv", {"ok": True, "data": "AAAA\n"}, "recv response: data is not standard base64 (A-Z a-z 0-9 + /, '=' "
                                             "padding): Only base64 data is allowed"),
    ("recv", {"ok": True, "data": "ÄAAA"}, "recv response: data is not standard base64 (A-Z a-z 0-9 + /, '=' "
                                           "padding): 'ascii' codec can't encode character '\\xc4' in position 0: "
                                           "ordinal not in range(128)"),
    ("close", {"ok": False}, "close response (failure): missing error; accepted fields: error, ok (optionally "
                             "errno, message, phase)"),
    ("close", {"ok": False, "error": "OSError", "code": 5}, "close response (failure): unexpected 'code'; accepted "
                                                          "fields: error, ok (optionally errno, message, phase)"),
    ("recv", {"ok": False, "error": "9Lives"}, "recv response: error must be a name matching "
                                               "[A-Za-z_][A-Za-z0-9_.]{0,63}\\Z; got '9Lives'"),
    ("recv", {"ok": False, "error": "A" * 65}, "recv response: error must be a name matching "
                                               f"[A-Za-z_][A-Za-z0-9_.]{{0,63}}\\Z; got '{'A' * 65}'"),
    ("recv", {"ok": False, "error": "Bad Name"}, "recv response: error must be a name matching "
                                                 "[A-Za-z_][A-Za-z0-9_.]{0,63}\\Z; got 'Bad Name'"),
    ("recv", {"ok": False, "error": 3}, "recv response: error must be a name matching "
                                        "[A-Za-z_][A-Za-z0-9_.]{0,63}\\Z; got 3"),
    ("recv", {"ok": False, "error": "OSError", "errno": "ENOTANERRNO"},
     "recv response: errno must be a Linux errno name such as 'ECONNRESET', or null; got 'ENOTANERRNO'"),
    ("recv", {"ok": False, "error": "OSError", "errno": 104},
     "recv response: errno must be a Linux errno name such as 'ECONNRESET', or null; got 104"),
    ("recv", {"ok": False, "error": "OSError", "errno": "errorcode"},
     "recv response: errno must be a Linux errno name such as 'ECONNRESET', or null; got 'errorcode'"),
    ("recv", {"ok": False, "error": "OSError", "message": None}, "recv response: message must be a string; got "
                                                                 "NoneType"),
    ("hello", {"ok": False, "error": "KeyError", "phase": "connect"},
     "hello response: phase 'connect'; accepted: 'import'"),
    ("hello", {"ok": False, "error": "KeyError", "phase": None}, "hello response: phase None; accepted: 'import'"),
    ("recv", {"ok": False, "error": "KeyError", "phase": "import"}, "recv response: phase is only for the hello "
                                                                    "response"),
]


@pytest.mark.parametrize(("op", "obj", "message"), BAD_RESPONSES)
def test_bad_responses_are_refused_saying_what_is_accepted(op: str, obj: Any, message: str) -> None:
    with pytest.raises(ProtocolViolation) as info:
        proto.parse_response(op, obj)
    assert str(info.value) == message


def test_a_response_is_read_for_a_known_op_only() -> None:
    with pytest.raises(ValueError, match="unknown op 'shutdown'; accepted: hello, connect, send, recv, close"):
        proto.parse_response("shutdown", {"ok": True})


def test_response_encoders_refuse_what_the_judge_would_refuse() -> None:
    with pytest.raises(ValueError, match="error name 'Bad Name' does not match"):
        proto.encode_response(Failure("Bad Name"))
    with pytest.raises(ValueError, match="errno 'EFOO' is not an errno name"):
        proto.encode_response(Failure("OSError", "EFOO"))
    with pytest.raises(ValueError, match="phase 'connect'; accepted: import"):
        proto.encode_response(Failure("OSError", phase="connect"))
    with pytest.raises(ValueError, match="hello reply: framing 'fixed' needs msglen, an int from 29 to 1048576; "
                                         "got 28"):
        proto.encode_response(HelloReply("fixed", 28))
    with pytest.raises(ValueError, match=f"a {proto.MAX_DATA + 1}-byte reply exceeds MAX_DATA"):
        proto.encode_response(Received(b"x" * (proto.MAX_DATA + 1)))
    with pytest.raises(TypeError, match="not a driver response"):
        proto.encode_response(None)  # type: ignore[arg-type]


def test_name_checks() -> None:
    assert proto.is_errno_name("ECONNRESET") and proto.is_errno_name("ENOTSUP")
    assert not proto.is_errno_name("E2BIG2") and not proto.is_errno_name("econnreset")
    assert not proto.is_errno_name(None)
    assert proto.is_error_name("_Private.Name_2") and not proto.is_error_name("")

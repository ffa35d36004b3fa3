package cluster

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseToken: a join token comes from a flag; any string must parse or
// fail with ErrToken, and a parsed token must print back to itself.
func FuzzParseToken(f *testing.F) {
	good := joinToken{secret: bytes.Repeat([]byte{7}, 32), caFP: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", addr: "127.0.0.1:7000"}.String()
	for _, s := range []string{good, "", "cvj1", "cvj1...", "cvj1.AAAA.00.AA", good + ".x", "cvj2" + good[4:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := parseToken(s)
		if err != nil {
			if !errors.Is(err, ErrToken) {
				t.Fatalf("error %v does not wrap ErrToken", err)
			}
			return
		}
		again, err := parseToken(tok.String())
		if err != nil || !bytes.Equal(again.secret, tok.secret) || again.caFP != tok.caFP || again.addr != tok.addr {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}

// FuzzWire: frames and request bodies come from peers; none may panic, and
// every error names ErrProtocol or a short read.
func FuzzWire(f *testing.F) {
	var buf bytes.Buffer
	_ = writeFrame(&buf, append([]byte{opAddVoter}, `{"id":"node-1","address":"127.0.0.1:1"}`...))
	f.Add(buf.Bytes())
	buf.Reset()
	_ = writeFrame(&buf, append([]byte{opCommit}, 1, '{', '}'))
	f.Add(buf.Bytes())
	buf.Reset()
	_ = writeFrame(&buf, []byte(`{"token":"x","nodeId":"n","address":"a:1","csr":"AAAA"}`))
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 5, opRemove})
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := readFrame(bytes.NewReader(in))
		if err != nil {
			return
		}
		_, _ = decodeJoinRequest(b)
		op, body, err := decodeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("decodeRequest error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if op == opAddVoter || op == opRemove {
			if m, err := decodeMember(body, op == opAddVoter); err == nil && m.ID == "" {
				t.Fatal("a member request without an ID was accepted")
			}
		}
	})
}

// FuzzFileWire: a file request comes from a member, a file header from the
// member asked; neither may panic, errors wrap ErrProtocol, and a header
// that parses without an error names a size in range and a full hash.
func FuzzFileWire(f *testing.F) {
	f.Add([]byte(`{"id":"0198a000-0000-7000-8000-000000000001"}`))
	f.Add([]byte(`{"size":1234,"sha256":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}`))
	f.Add([]byte(`{"error":"no such recording"}`))
	f.Add([]byte(`{"size":-1,"sha256":""}`))
	f.Add([]byte(`{"size":1e30}`))
	f.Add([]byte(`{"id":""}`))
	f.Add([]byte(`{"id":"0198a000-0000-7000-8000-000000000001","kind":"sip"}`))
	f.Add([]byte(`{"id":"0198a000-0000-7000-8000-000000000001","kind":"audio"}`))
	f.Add([]byte(`{"size":0}`))
	f.Add([]byte("\x0c{\"id\":\"x\",\"status\":\"complete\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// A committed entry's recording ID, as the FSM reads it for the copier.
		_ = recordingOf(b)
		if r, err := decodeFileRequest(b); err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("request error %v does not wrap ErrProtocol", err)
			}
		} else if r.ID == "" || len(r.ID) > 64 {
			t.Fatalf("request with id %q accepted", r.ID)
		}
		if r, err := decodeFileRequest(b); err == nil && r.Kind != "" && r.Kind != fileKindSIP {
			t.Fatalf("request of kind %q accepted", r.Kind)
		}
		if h, err := decodeFileHeader(b, fileKindSIP); err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("side file header error %v does not wrap ErrProtocol", err)
		} else if err == nil && h.Error == "" && (h.Size < 0 || h.Size > maxSignallingFile || h.SHA256 != "") {
			t.Fatalf("side file header %+v accepted", h)
		}
		h, err := decodeFileHeader(b, "")
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("header error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if h.Error == "" && (h.Size < 0 || h.Size > maxFileSize || len(h.SHA256) != 64) {
			t.Fatalf("header %+v accepted", h)
		}
	})
}

// Package sdkhttp gives AWS SDK clients in tests an HTTP client that does
// not lose answers to a known SDK race. Only tests import it.
package sdkhttp

import (
	"bytes"
	"io"
	"net/http"
)

// OwnBody wraps hc so that net/http gets a request body of its own.
// smithy-go closes the body of the request it built as soon as Client.Do
// returns; racing with the transport, that sometimes gets the connection
// closed under the response still being read, and a 200 answer fails with
// "deserialization failed ... use of closed network connection"
// (aws/aws-sdk-go-v2#2737, #1825). Seen on large ListKeys answers (about 1
// in 30) and, rarely, elsewhere; with this wrapper, never. Tests that assert
// on first answers (no SDK retries) would otherwise flake.
func OwnBody(hc *http.Client) interface {
	Do(*http.Request) (*http.Response, error)
} {
	if hc == nil {
		hc = &http.Client{}
	}
	return ownBodyClient{hc}
}

type ownBodyClient struct{ hc *http.Client }

func (c ownBodyClient) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		r.ContentLength = int64(len(b))
	}
	return c.hc.Do(r)
}

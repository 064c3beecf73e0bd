package benchkit

import (
	"bytes"
	"fmt"
	"net/http"
)

// Expect sends req and checks for a 200 whose body contains expect. The body
// is read to the end into buf (reset first), so the connection is reused.
func Expect(client *http.Client, req *http.Request, expect []byte, buf *bytes.Buffer) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("read body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, buf.Bytes())
	case !bytes.Contains(buf.Bytes(), expect):
		return fmt.Errorf("body lacks %s: %.200s", expect, buf.Bytes())
	}
	return nil
}

package realtime

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// idCodec turns an event's stream sequence into the ID a client sees, and
// back. The sequence is counted across every workspace of the deployment, so
// shown as is it would tell any client how busy the other tenants are. It is
// sealed instead: one AES block holding the sequence and half of the
// workspace's UUID, encrypted with the deployment's key. The result is
// opaque, the same on every node (they share the key) and only accepted
// back on the stream of the workspace it was issued for.
type idCodec struct {
	block cipher.Block
}

// sealedIDLength is the length of a sealed ID: 16 bytes in unpadded base64url.
const sealedIDLength = 22

func newIDCodec(key []byte) (idCodec, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return idCodec{}, fmt.Errorf("realtime: event ID key: %w", err)
	}
	return idCodec{block: block}, nil
}

// format returns the client's ID of the event at seq in workspaceID's stream.
func (c idCodec) format(workspaceID uuid.UUID, seq uint64) string {
	var b [aes.BlockSize]byte
	binary.BigEndian.PutUint64(b[:8], seq)
	copy(b[8:], workspaceID[8:]) // the random half of a UUIDv7
	c.block.Encrypt(b[:], b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseEventID returns the stream sequence an event ID of workspaceID's stream
// stands for. It returns an invalid *kernel.Error naming field when id is
// malformed, was sealed with another key or belongs to another workspace.
func (h *Hub) ParseEventID(field string, workspaceID uuid.UUID, id string) (uint64, error) {
	bad := kernel.Invalid(field, "is not an event ID of this workspace's stream")
	if len(id) != sealedIDLength {
		return 0, bad
	}
	var b [aes.BlockSize]byte
	if n, err := base64.RawURLEncoding.Decode(b[:], []byte(id)); err != nil || n != len(b) {
		return 0, bad
	}
	h.ids.block.Decrypt(b[:], b[:])
	if [8]byte(b[8:]) != [8]byte(workspaceID[8:]) {
		return 0, bad
	}
	return binary.BigEndian.Uint64(b[:8]), nil
}

package source

import (
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// verifyCommit checks that commit carries a valid OpenPGP signature by a key
// in the armored key ring file. The file is read on every call so that a
// rotated key ring applies from the next poll.
func verifyCommit(commit *object.Commit, keyRingFile string) error {
	sha := commit.Hash.String()
	ring, err := os.ReadFile(keyRingFile)
	if err != nil {
		return &SignatureError{Commit: sha, Reason: "keyring", Err: err}
	}
	keys, err := openpgp.ReadArmoredKeyRing(strings.NewReader(string(ring)))
	if err != nil {
		return &SignatureError{Commit: sha, Reason: "keyring", Err: fmt.Errorf("parse %s: %w", keyRingFile, err)}
	}
	if len(keys) == 0 {
		return &SignatureError{Commit: sha, Reason: "keyring", Err: fmt.Errorf("%s holds no keys", keyRingFile)}
	}
	if strings.TrimSpace(commit.PGPSignature) == "" {
		return &SignatureError{Commit: sha, Reason: "unsigned"}
	}
	if _, err := commit.Verify(string(ring)); err != nil {
		return &SignatureError{Commit: sha, Reason: "invalid", Err: err}
	}
	return nil
}

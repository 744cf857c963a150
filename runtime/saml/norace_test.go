//go:build !race

package saml

// raceDetector is set when the tests run with -race, which makes each
// request tens of times slower.
const raceDetector = false

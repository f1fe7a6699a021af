//go:build race

package markdown

// raceEnabled is true under the race detector, which makes the tests that
// convert large texts several times slower.
const raceEnabled = true

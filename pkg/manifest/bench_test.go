package manifest

import "testing"

func BenchmarkParse(b *testing.B) {
	doc := []byte(sample)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	m, err := Parse([]byte(sample))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Hash(); err != nil {
			b.Fatal(err)
		}
	}
}

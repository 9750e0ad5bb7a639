package clientauth

import (
	"testing"
	"time"
)

func TestCacheSumIsUnambiguous(t *testing.T) {
	c, err := newVerifiedCache(10, 0, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[verified]string{}
	for _, triple := range [][3]string{
		{"ab", "c", "h"}, {"a", "bc", "h"}, {"a", "b", "ch"}, {"a", "bch", ""}, {"", "abc", "h"},
	} {
		s := c.sum(triple[0], triple[1], triple[2])
		if prev, dup := seen[s]; dup {
			t.Fatalf("%q and %q have one MAC", prev, triple)
		}
		seen[s] = triple[0] + "|" + triple[1] + "|" + triple[2]
		if c.sum(triple[0], triple[1], triple[2]) != s {
			t.Fatal("sum is not deterministic")
		}
	}
	// Another cache instance has another key.
	c2, _ := newVerifiedCache(10, 0, time.Now)
	if c2.sum("a", "b", "c") == c.sum("a", "b", "c") {
		t.Fatal("two caches share a key")
	}
}

func TestCacheMismatchKeepsEntry(t *testing.T) {
	c, _ := newVerifiedCache(10, 0, time.Now)
	good := c.sum("app", "right", "h")
	c.add("app", good)
	for range 100 {
		if c.hit("app", c.sum("app", "wrong", "h")) {
			t.Fatal("wrong secret hit")
		}
	}
	if !c.hit("app", good) {
		t.Fatal("entry lost after mismatches")
	}
	c.remove("app")
	if c.hit("app", good) || c.len() != 0 {
		t.Fatal("entry survived remove")
	}
}

// TestCacheStoredHashBindsEntry: an entry verified against one stored hash
// does not answer for another (the secret was rotated, or the row was
// rewritten), even for the same id and secret, and the miss leaves it.
func TestCacheStoredHashBindsEntry(t *testing.T) {
	c, _ := newVerifiedCache(10, 0, time.Now)
	c.add("app", c.sum("app", "s3cret", "$argon2id$old"))
	if c.hit("app", c.sum("app", "s3cret", "$argon2id$new")) {
		t.Fatal("an entry verified against the old hash answered for the new one")
	}
	if !c.hit("app", c.sum("app", "s3cret", "$argon2id$old")) {
		t.Fatal("the entry did not survive a miss on another hash")
	}
	if c.hit("other", c.sum("other", "s3cret", "$argon2id$old")) {
		t.Fatal("an entry answered for another id")
	}
}

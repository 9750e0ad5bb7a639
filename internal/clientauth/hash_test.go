package clientauth

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// cheap are argon2id parameters that keep tests fast.
var cheap = Argon2Params{Memory: 64, Time: 1, Threads: 1}

var phcArgon2id = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)

func TestHashSecret(t *testing.T) {
	h, err := HashSecret("s3cret", cheap)
	if err != nil {
		t.Fatal(err)
	}
	m := phcArgon2id.FindStringSubmatch(h)
	if m == nil || m[1] != "64" || m[2] != "1" || m[3] != "1" {
		t.Fatalf("hash %q is not $argon2id$v=19$m=64,t=1,p=1$<16 bytes>$<32 bytes>", h)
	}
	// The hash is argon2id over the salt it names.
	salt, _ := base64.RawStdEncoding.DecodeString(m[4])
	key, _ := base64.RawStdEncoding.DecodeString(m[5])
	if want := argon2.IDKey([]byte("s3cret"), salt, 1, 64, 1, 32); string(key) != string(want) {
		t.Fatal("hash is not argon2.IDKey of the secret and salt")
	}
	if ok, err := VerifySecret(h, "s3cret"); !ok || err != nil {
		t.Fatalf("VerifySecret(right) = %v, %v", ok, err)
	}
	if ok, err := VerifySecret(h, "s3cret "); ok || err != nil {
		t.Fatalf("VerifySecret(wrong) = %v, %v", ok, err)
	}
	if err := ValidHash(h); err != nil {
		t.Fatalf("ValidHash: %v", err)
	}
	h2, _ := HashSecret("s3cret", cheap)
	if h2 == h {
		t.Fatal("two hashes of one secret are equal: salt not random")
	}
}

func TestHashSecretDefaultParams(t *testing.T) {
	h, err := HashSecret("s3cret", DefaultArgon2Params)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q: want the OWASP minimum m=19456,t=2,p=1", h)
	}
	if ok, err := VerifySecret(h, "s3cret"); !ok || err != nil {
		t.Fatalf("VerifySecret = %v, %v", ok, err)
	}
}

func TestHashSecretRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		secret string
		p      Argon2Params
	}{
		"empty secret":       {"", cheap},
		"zero time":          {"s", Argon2Params{Memory: 64, Time: 0, Threads: 1}},
		"zero threads":       {"s", Argon2Params{Memory: 64, Time: 1, Threads: 0}},
		"memory below 8*p":   {"s", Argon2Params{Memory: 15, Time: 1, Threads: 2}},
		"memory above cap":   {"s", Argon2Params{Memory: MaxArgon2Memory + 1, Time: 1, Threads: 1}},
		"time above cap":     {"s", Argon2Params{Memory: 64, Time: MaxArgon2Time + 1, Threads: 1}},
		"threads above cap":  {"s", Argon2Params{Memory: 1024, Time: 1, Threads: MaxArgon2Threads + 1}},
		"zero value params":  {"s", Argon2Params{}},
		"memory zero only":   {"s", Argon2Params{Time: 1, Threads: 1}},
		"threads max uint8":  {"s", Argon2Params{Memory: 1 << 20, Time: 1, Threads: 255}},
		"time max uint32":    {"s", Argon2Params{Memory: 64, Time: ^uint32(0), Threads: 1}},
		"memory max uint32":  {"s", Argon2Params{Memory: ^uint32(0), Time: 1, Threads: 1}},
		"all caps exceeded":  {"s", Argon2Params{Memory: ^uint32(0), Time: ^uint32(0), Threads: 255}},
		"empty secret, zero": {"", Argon2Params{}},
	} {
		if h, err := HashSecret(tc.secret, tc.p); err == nil {
			t.Errorf("%s: HashSecret = %q, want an error", name, h)
		}
	}
}

func b64(b []byte) string  { return base64.RawStdEncoding.EncodeToString(b) }
func ab64(b []byte) string { return strings.ReplaceAll(b64(b), "+", ".") }

// TestVerifySecretKnownAnswers checks each supported format against vectors
// made by other implementations (hard-coded) and by the underlying
// libraries (generated here).
func TestVerifySecretKnownAnswers(t *testing.T) {
	salt := []byte("0123456789abcdef")
	const secret = "p@ss:w%rd+ ~é"

	idKey := argon2.IDKey([]byte(secret), salt, 2, 64, 2, 32)
	iKey := argon2.Key([]byte(secret), salt, 2, 64, 2, 32)
	bc, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := pbkdf2.Key(sha256.New, secret, salt, 1000, 32)
	if err != nil {
		t.Fatal(err)
	}
	p512, err := pbkdf2.Key(sha512.New, secret, salt, 1000, 64)
	if err != nil {
		t.Fatal(err)
	}
	// A salt whose base64 has '+', so the passlib form has '.'.
	plusSalt := []byte("\xfb\xef\xbe0123456789abc")
	pPlus, err := pbkdf2.Key(sha256.New, secret, plusSalt, 1000, 32)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, hash, secret string
	}{
		// Reference implementation (github.com/P-H-C/phc-winner-argon2
		// README): echo -n "password" | argon2 somesalt -t 2 -m 16 -p 4 [-id]
		{"argon2i reference", "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG", "password"},
		{"argon2id reference", "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo", "password"},
		// OpenBSD bcrypt test vector; the others made with libxcrypt
		// (python3 crypt.crypt).
		{"bcrypt 2a openbsd", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
		{"bcrypt 2b libxcrypt", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
		{"bcrypt 2y libxcrypt", "$2y$06$abcdefghijklmnopqrstuu99blbqicefByhvY5Va3Nq7GtY5.CKwi", "tokengw secret"},
		// hashlib.pbkdf2_hmac("sha256", ...) encoded by hand as passlib
		// does ("ab64": '.' for '+', no padding), and in PHC form.
		{"pbkdf2 passlib hashlib", "$pbkdf2-sha256$29000$....AQIDBAUGBwgJCgsMDQ$xTmf2HxyZm.8MEY6/m3O8X3oyA7KG8YB6INGg1SRHGY", "correct horse 8"},
		{"pbkdf2 passlib hashlib small", "$pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$IxNdg8NkgsPsvZtZ/dIIxQtuE6Q0JUex2uZPfD2cSxo", "tokengw secret"},
		{"pbkdf2 phc hashlib", "$pbkdf2-sha256$i=1000,l=32$ZGVmZ2hpamtsbW5vcHFycw$xLwwVm3XXX0y9FW91WHKb2otrsSbvFfOfqT6OAYp1pQ", "p@ss:w%rd+"},

		// Generated with the libraries.
		{"argon2id generated", fmt.Sprintf("$argon2id$v=19$m=64,t=2,p=2$%s$%s", b64(salt), b64(idKey)), secret},
		{"argon2i generated", fmt.Sprintf("$argon2i$v=19$m=64,t=2,p=2$%s$%s", b64(salt), b64(iKey)), secret},
		{"bcrypt 2a generated", string(bc), secret},
		{"bcrypt 2b generated", "$2b" + string(bc[3:]), secret},
		{"bcrypt 2y generated", "$2y" + string(bc[3:]), secret},
		{"pbkdf2-sha256 phc with l", fmt.Sprintf("$pbkdf2-sha256$i=1000,l=32$%s$%s", b64(salt), b64(p256)), secret},
		{"pbkdf2-sha256 phc without l", fmt.Sprintf("$pbkdf2-sha256$i=1000$%s$%s", b64(salt), b64(p256)), secret},
		{"pbkdf2-sha256 passlib", fmt.Sprintf("$pbkdf2-sha256$1000$%s$%s", ab64(salt), ab64(p256)), secret},
		{"pbkdf2-sha256 passlib dot", fmt.Sprintf("$pbkdf2-sha256$1000$%s$%s", ab64(plusSalt), ab64(pPlus)), secret},
		// passlib's ab64 decoder accepts the standard '+' as well.
		{"pbkdf2-sha256 passlib plus", fmt.Sprintf("$pbkdf2-sha256$1000$%s$%s", b64(plusSalt), b64(pPlus)), secret},
		{"pbkdf2-sha512 phc", fmt.Sprintf("$pbkdf2-sha512$i=1000,l=64$%s$%s", b64(salt), b64(p512)), secret},
		{"pbkdf2-sha512 passlib", fmt.Sprintf("$pbkdf2-sha512$1000$%s$%s", ab64(salt), ab64(p512)), secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := ValidHash(tt.hash); err != nil {
				t.Fatalf("ValidHash: %v", err)
			}
			if ok, err := VerifySecret(tt.hash, tt.secret); !ok || err != nil {
				t.Fatalf("VerifySecret(right) = %v, %v", ok, err)
			}
			for _, wrong := range []string{tt.secret + "x", tt.secret[1:]} {
				if ok, err := VerifySecret(tt.hash, wrong); ok || err != nil {
					t.Fatalf("VerifySecret(%q) = %v, %v; want false, nil", wrong, ok, err)
				}
			}
		})
	}
}

func TestVerifySecretBadHashes(t *testing.T) {
	salt, key := b64([]byte("0123456789abcdef")), b64(make([]byte, 32))
	argon := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }
	bc := "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
	tests := []struct{ name, hash string }{
		{"empty", ""},
		{"plain text", "s3cret"},
		{"dollar only", "$"},
		{"unknown algorithm", "$scrypt$ln=16,r=8,p=1$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2 version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2 no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2 missing hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"argon2 extra field", argon("m=64,t=1,p=1") + "$x"},
		{"argon2 params out of order", argon("t=1,m=64,p=1")},
		{"argon2 extra param", argon("m=64,t=1,p=1,keyid=x")},
		{"argon2 leading zero", argon("m=064,t=1,p=1")},
		{"argon2 sign", argon("m=+64,t=1,p=1")},
		{"argon2 negative", argon("m=-64,t=1,p=1")},
		{"argon2 huge number", argon("m=99999999999,t=1,p=1")},
		{"argon2 memory above cap", argon(fmt.Sprintf("m=%d,t=1,p=1", MaxArgon2Memory+1))},
		// Ten digits reach past uint32: 2^32+64 must not wrap to m=64.
		{"argon2 memory wraps uint32", argon("m=4294967360,t=1,p=1")},
		{"argon2 time wraps uint32", argon("m=64,t=4294967297,p=1")},
		{"argon2 memory 4 GiB", argon("m=4194304,t=1,p=1")},
		{"argon2 memory x time above the work cap", argon(fmt.Sprintf("m=%d,t=3,p=1", MaxArgon2Memory))},
		{"argon2 memory below 8p", argon("m=15,t=1,p=2")},
		{"argon2 time zero", argon("m=64,t=0,p=1")},
		{"argon2 time above cap", argon("m=64,t=101,p=1")},
		{"argon2 threads zero", argon("m=64,t=1,p=0")},
		{"argon2 threads above cap", argon("m=4096,t=1,p=65")},
		{"argon2 threads above uint8", argon("m=4096,t=1,p=256")},
		{"argon2 padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"argon2 newline in hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "\n"},
		{"argon2 url-safe base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("_", 43)},
		{"argon2 short salt", "$argon2id$v=19$m=64,t=1,p=1$" + b64([]byte("1234567")) + "$" + key},
		{"argon2 short hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + b64(make([]byte, 15))},
		{"argon2 long hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + b64(make([]byte, 129))},
		{"argon2 long salt", "$argon2id$v=19$m=64,t=1,p=1$" + b64(make([]byte, 1025)) + "$" + key},
		{"bcrypt truncated", bc[:59]},
		{"bcrypt extended", bc + "x"},
		{"bcrypt 2x", "$2x" + bc[3:]},
		{"bcrypt 2", "$2$05$" + bc[7:] + "x"},
		{"bcrypt cost 3", "$2b$03" + bc[6:]},
		{"bcrypt cost above cap", "$2b$17" + bc[6:]},
		{"bcrypt cost 31", "$2b$31" + bc[6:]},
		{"bcrypt cost not digits", "$2b$x5" + bc[6:]},
		{"bcrypt missing dollar", "$2b$05x" + bc[7:]},
		{"bcrypt bad character", bc[:59] + "$"},
		{"pbkdf2 sha1", "$pbkdf2$1000$" + ab64([]byte("salt")) + "$" + key},
		{"pbkdf2 no fields", "$pbkdf2-sha256"},
		{"pbkdf2 iterations zero", "$pbkdf2-sha256$i=0$" + salt + "$" + key},
		{"pbkdf2 iterations above cap", "$pbkdf2-sha256$i=10000001$" + salt + "$" + key},
		{"pbkdf2 passlib iterations above cap", "$pbkdf2-sha256$10000001$" + salt + "$" + key},
		{"pbkdf2 passlib iterations not decimal", "$pbkdf2-sha256$1e3$" + salt + "$" + key},
		{"pbkdf2 l mismatch", "$pbkdf2-sha256$i=1000,l=16$" + salt + "$" + key},
		{"pbkdf2 l huge", "$pbkdf2-sha256$i=1000,l=9999999999$" + salt + "$" + key},
		{"pbkdf2 params reversed", "$pbkdf2-sha256$l=32,i=1000$" + salt + "$" + key},
		{"pbkdf2 unknown param", "$pbkdf2-sha256$i=1000,x=1$" + salt + "$" + key},
		{"pbkdf2 phc with dot", "$pbkdf2-sha256$i=1000$" + salt + "$" + strings.ReplaceAll(key, "A", ".")},
		{"pbkdf2 short hash", "$pbkdf2-sha256$1000$" + salt + "$" + b64(make([]byte, 8))},
		{"pbkdf2 empty hash", "$pbkdf2-sha256$1000$" + salt + "$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidHash(tt.hash); !errors.Is(err, ErrBadHash) {
				t.Errorf("ValidHash = %v, want ErrBadHash", err)
			}
			ok, err := VerifySecret(tt.hash, "s3cret")
			if ok || !errors.Is(err, ErrBadHash) {
				t.Errorf("VerifySecret = %v, %v; want false, ErrBadHash", ok, err)
			}
		})
	}
}

// fuzzLimits keep one fuzz iteration to microseconds.
func fuzzLimits() limits {
	return limits{argon2Memory: 64, argon2Time: 2, argon2Work: 128, argon2Threads: 2, bcryptCost: bcrypt.MinCost, pbkdf2Iter: 1000}
}

// FuzzVerifySecret: the PHC parser never panics, its errors wrap ErrBadHash,
// and a hash it accepts verifies (true or false) without error.
func FuzzVerifySecret(f *testing.F) {
	salt := []byte("0123456789abcdef")
	idKey := argon2.IDKey([]byte("s"), salt, 1, 64, 1, 32)
	bc, _ := bcrypt.GenerateFromPassword([]byte("s"), bcrypt.MinCost)
	p256, _ := pbkdf2.Key(sha256.New, "s", salt, 10, 32)
	f.Add(fmt.Sprintf("$argon2id$v=19$m=64,t=1,p=1$%s$%s", b64(salt), b64(idKey)), "s")
	f.Add(fmt.Sprintf("$argon2i$v=19$m=16,t=2,p=2$%s$%s", b64(salt), b64(idKey)), "s")
	f.Add(string(bc), "s")
	f.Add(fmt.Sprintf("$pbkdf2-sha256$i=10,l=32$%s$%s", b64(salt), b64(p256)), "s")
	f.Add(fmt.Sprintf("$pbkdf2-sha256$10$%s$%s", ab64(salt), ab64(p256)), "s")
	f.Add(fmt.Sprintf("$pbkdf2-sha512$i=10$%s$%s", b64(salt), b64(p256)), "s")
	f.Add("$argon2id$v=19$m=,t=,p=$$", "")
	f.Add("$2b$04$", "")
	f.Fuzz(func(t *testing.T, phc, secret string) {
		lim := fuzzLimits()
		ok, err := verifySecret(phc, secret, lim)
		_, perr := parseHash(phc, lim)
		if (err == nil) != (perr == nil) {
			t.Fatalf("verify error %v but parse error %v", err, perr)
		}
		if err != nil {
			if ok || !errors.Is(err, ErrBadHash) {
				t.Fatalf("VerifySecret = %v, %v; want false, ErrBadHash", ok, err)
			}
			return
		}
		// Whatever the tiny caps accept, the default caps accept too.
		if err := ValidHash(phc); err != nil {
			t.Fatalf("accepted under fuzz caps, rejected by ValidHash: %v", err)
		}
	})
}

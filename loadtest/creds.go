package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/tokengw/tokengw/internal/clientauth"
)

// Credential is one consumer: a client id and its plain secret.
type Credential struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// basicAuth is the Authorization header value of c: HTTP Basic over the
// form-encoded id and secret, as RFC 6749 §2.3.1 asks ("The client
// identifier is encoded using the application/x-www-form-urlencoded encoding
// algorithm ... and the encoded value is used as the username").
func (c Credential) basicAuth() string {
	raw := url.QueryEscape(c.ID) + ":" + url.QueryEscape(c.Secret)
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(raw))
}

// loadCredentials reads a credentials file: a JSON array of {"id",
// "secret"} objects (or an object with such an array under "clients"), or
// CSV rows "id,secret" with an optional header row; '#' starts a comment.
func loadCredentials(path string) ([]Credential, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	creds, err := parseCredentials(b)
	if err != nil {
		return nil, fmt.Errorf("credentials: %s: %w", path, err)
	}
	return creds, nil
}

func parseCredentials(b []byte) ([]Credential, error) {
	var creds []Credential
	trimmed := bytes.TrimSpace(b)
	switch {
	case len(trimmed) == 0:
		return nil, errors.New("empty file")
	case trimmed[0] == '[':
		if err := json.Unmarshal(trimmed, &creds); err != nil {
			return nil, err
		}
	case trimmed[0] == '{':
		var wrapped struct {
			Clients []Credential `json:"clients"`
		}
		if err := json.Unmarshal(trimmed, &wrapped); err != nil {
			return nil, err
		}
		creds = wrapped.Clients
	default:
		r := csv.NewReader(bytes.NewReader(trimmed))
		r.Comment = '#'
		r.FieldsPerRecord = -1
		r.TrimLeadingSpace = true
		rows, err := r.ReadAll()
		if err != nil {
			return nil, err
		}
		for i, row := range rows {
			if len(row) < 2 {
				return nil, fmt.Errorf("row %d: want id,secret", i+1)
			}
			if i == 0 && strings.EqualFold(row[0], "id") && strings.EqualFold(row[1], "secret") {
				continue
			}
			creds = append(creds, Credential{ID: row[0], Secret: row[1]})
		}
	}
	if len(creds) == 0 {
		return nil, errors.New("no credentials")
	}
	for i, c := range creds {
		if c.ID == "" || c.Secret == "" {
			return nil, fmt.Errorf("entry %d: empty id or secret", i+1)
		}
	}
	return creds, nil
}

// writeCredentials writes creds as CSV when path ends in .csv, else as a
// JSON array (what the k6 scripts read). The file is created 0600: it holds
// secrets.
func writeCredentials(path string, creds []Credential) error {
	var buf bytes.Buffer
	if strings.EqualFold(filepath.Ext(path), ".csv") {
		w := csv.NewWriter(&buf)
		_ = w.Write([]string{"id", "secret"})
		for _, c := range creds {
			_ = w.Write([]string{c.ID, c.Secret})
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return err
		}
	} else {
		b, err := json.MarshalIndent(creds, "", "  ")
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

// randomString is n random bytes, base64url without padding: only RFC 3986
// unreserved characters, so form encoding leaves it alone.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// generateCredentials makes n consumers prefix1..prefixN with random
// 256-bit secrets.
func generateCredentials(n int, prefix string) []Credential {
	creds := make([]Credential, n)
	for i := range creds {
		creds[i] = Credential{ID: fmt.Sprintf("%s%d", prefix, i+1), Secret: randomString(32)}
	}
	return creds
}

// clientsYAML is the `clients:` section of a tokengw config for creds, each
// with the given scopes and an argon2id hash of its secret.
func clientsYAML(creds []Credential, scopes []string, p clientauth.Argon2Params) (string, error) {
	hashes, err := hashSecrets(creds, p)
	if err != nil {
		return "", err
	}
	list, err := genClients(creds, scopes, hashes)
	if err != nil {
		return "", err
	}
	return marshalYAML("", struct {
		Clients []genClient `yaml:"clients"`
	}{list})
}

// hashSecrets hashes every secret with argon2id. Hashing is deliberately
// slow (tens of ms each), so it runs on every CPU.
func hashSecrets(creds []Credential, p clientauth.Argon2Params) ([]string, error) {
	hashes := make([]string, len(creds))
	errs := make([]error, len(creds))
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	for i, c := range creds {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			hashes[i], errs[i] = clientauth.HashSecret(c.Secret, p)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return hashes, nil
}

// genClients pairs creds with their hashes as config clients.
func genClients(creds []Credential, scopes, hashes []string) ([]genClient, error) {
	if len(hashes) != len(creds) {
		return nil, fmt.Errorf("loadtest: %d hashes for %d credentials", len(hashes), len(creds))
	}
	out := make([]genClient, len(creds))
	for i, c := range creds {
		out[i] = genClient{ID: c.ID, SecretHash: hashes[i], Scopes: scopes}
	}
	return out, nil
}

// yamlString quotes s for YAML (JSON strings are YAML strings).
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// adminClient creates consumers through tokengw's admin API:
// POST /admin/clients {"id", "scopes"} -> 201 {"client": {...}, "secret"}.
type adminClient struct {
	base   string // the admin listener's base URL, e.g. http://127.0.0.1:9090
	token  string // server.admin_token
	client *http.Client
}

// create makes n consumers named prefix1..prefixN with the given scopes and
// returns their credentials.
func (a adminClient) create(ctx context.Context, n int, prefix string, scopes []string) ([]Credential, error) {
	creds := make([]Credential, 0, n)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := a.createOne(ctx, fmt.Sprintf("%s%d", prefix, i+1), scopes)
		if err != nil {
			return nil, err
		}
		creds = append(creds, c)
	}
	return creds, nil
}

func (a adminClient) createOne(ctx context.Context, id string, scopes []string) (Credential, error) {
	body, err := json.Marshal(map[string]any{"id": id, "scopes": scopes})
	if err != nil {
		return Credential{}, err
	}
	u := strings.TrimRight(a.base, "/") + "/admin/clients"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Credential{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.client.Do(req)
	if err != nil {
		return Credential{}, fmt.Errorf("admin api: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Credential{}, fmt.Errorf("admin api: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return Credential{}, fmt.Errorf("admin api: POST %s: %s: %s", u, resp.Status, bytes.TrimSpace(rb))
	}
	var out struct {
		Client struct {
			ID string `json:"id"`
		} `json:"client"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(rb, &out); err != nil {
		return Credential{}, fmt.Errorf("admin api: decoding the response: %w", err)
	}
	if out.Client.ID == "" || out.Secret == "" {
		return Credential{}, errors.New("admin api: response without client.id or secret")
	}
	return Credential{ID: out.Client.ID, Secret: out.Secret}, nil
}

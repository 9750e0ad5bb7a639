package oauth

import (
	"maps"
	"slices"
)

// Form is a parsed application/x-www-form-urlencoded request body: its
// parameters in the order they were sent. It answers what url.Values
// answers (Get, Has, the values of a key) without a map: a token request
// carries a handful of parameters, and scanning them costs less than
// building and hashing a map (one allocation per body instead of three).
// The zero Form is empty. DropEmpty is the only method that changes a Form.
type Form struct {
	params []Param
	// counts is how many values each key has, built only for a form of
	// more than smallForm parameters, so that no method is quadratic in a
	// hostile body's parameter count (up to maxFormParams).
	counts map[string]int
}

// smallForm is the largest form whose methods scan the parameters instead
// of consulting counts: a token request has a handful.
const smallForm = 16

// Param is one parameter of a Form.
type Param struct {
	Key, Value string
}

// ParseRequestForm parses body as ParseFormShape does, into a Form: the same
// parameters and values as url.ParseQuery, an error exactly when it fails.
// Unescaped keys and values are substrings of body.
func ParseRequestForm(body string) (Form, FormShape, error) {
	n, err := formParams(body)
	if err != nil {
		return Form{}, FormShape{}, err
	}
	f := Form{params: make([]Param, 0, n)}
	shape, err := scanForm(body, func(k, v string) bool {
		seen := f.Has(k)
		f.add(k, v)
		return seen
	})
	return f, shape, err
}

// add appends a parameter, keeping counts once the form is past smallForm.
func (f *Form) add(k, v string) {
	f.params = append(f.params, Param{Key: k, Value: v})
	switch {
	case f.counts != nil:
		f.counts[k]++
	case len(f.params) > smallForm:
		f.counts = make(map[string]int, 2*len(f.params))
		for _, p := range f.params {
			f.counts[p.Key]++
		}
	}
}

// Get returns the first value of key, or "".
func (f Form) Get(key string) string {
	for _, p := range f.params {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}

// Has reports whether key was sent.
func (f Form) Has(key string) bool {
	if f.counts != nil {
		return f.counts[key] > 0
	}
	for _, p := range f.params {
		if p.Key == key {
			return true
		}
	}
	return false
}

// Count is how many values key has.
func (f Form) Count(key string) int {
	if f.counts != nil {
		return f.counts[key]
	}
	n := 0
	for _, p := range f.params {
		if p.Key == key {
			n++
		}
	}
	return n
}

// Values returns key's values in order, nil when it was not sent. The
// slice is the caller's.
func (f Form) Values(key string) []string {
	var vs []string
	for _, p := range f.params {
		if p.Key == key {
			vs = append(vs, p.Value)
		}
	}
	return vs
}

// Repeated returns the first key, in body order, that has more than one
// value and is not one of allowed; ok is false when there is none.
func (f Form) Repeated(allowed ...string) (key string, ok bool) {
	for i, p := range f.params {
		if slices.Contains(allowed, p.Key) {
			continue
		}
		if f.counts != nil {
			if f.counts[p.Key] > 1 {
				return p.Key, true
			}
			continue
		}
		for _, q := range f.params[i+1:] {
			if q.Key == p.Key {
				return p.Key, true
			}
		}
	}
	return "", false
}

// DropEmpty removes every parameter that was sent once with an empty value
// (RFC 6749 §3.2: "Parameters sent without a value MUST be treated as if
// they were omitted from the request"). A key with several values keeps
// them all, empty ones included.
func (f *Form) DropEmpty() {
	var kept []Param // nil until something is dropped: f.params is read whole first
	for i, p := range f.params {
		drop := p.Value == "" && f.Count(p.Key) == 1
		switch {
		case drop && kept == nil:
			kept = append(make([]Param, 0, len(f.params)), f.params[:i]...)
		case !drop && kept != nil:
			kept = append(kept, p)
		}
	}
	if kept == nil {
		return
	}
	if f.counts != nil {
		// A copy of the Form shares the map: change a clone of it.
		f.counts = maps.Clone(f.counts)
		for _, p := range f.params {
			if p.Value == "" && f.counts[p.Key] == 1 {
				delete(f.counts, p.Key)
			}
		}
	}
	f.params = kept
}

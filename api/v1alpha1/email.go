package v1alpha1

import "strings"

// EmailKey is the form in which the hub compares email addresses (a
// Member's spec.email, an APIKey's spec.owner): trimmed and in lower case.
// RFC 5321 lets a mail server treat the local part's case as significant,
// but no provider does, and matching by exact case would let
// Member@Example.com own keys outside member@example.com's groups and caps.
func EmailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// SameEmail tells whether two addresses are the same under [EmailKey].
func SameEmail(a, b string) bool { return EmailKey(a) == EmailKey(b) }

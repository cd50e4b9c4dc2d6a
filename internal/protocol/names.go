package protocol

import "regexp"

var validNameRegex = regexp.MustCompile(`^[.a-zA-Z0-9_-]+(#ephemeral)?$`)

// IsValidTopicName reports whether name is a legal topic name (D-NAME-01):
// 1..64 bytes including an optional "#ephemeral" suffix.
func IsValidTopicName(name string) bool { return isValidName(name) }

// IsValidChannelName reports whether name is a legal channel name (D-NAME-01).
func IsValidChannelName(name string) bool { return isValidName(name) }

func isValidName(name string) bool {
	if len(name) > 64 || len(name) < 1 {
		return false
	}
	return validNameRegex.MatchString(name)
}

// IsEphemeral reports whether a topic or channel name carries the #ephemeral suffix.
func IsEphemeral(name string) bool {
	return len(name) > 10 && name[len(name)-10:] == "#ephemeral"
}

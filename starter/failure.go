package main

import (
	"regexp"
	"strings"
)

// sdkNoise are the parts of a Temporal failure's text that say how the
// SDK carried it, not what went wrong: "(type: WrongBlobStore,
// retryable: true)", "activity error (type: HashChunk, scheduledEventID:
// 11, ...): ".
var sdkNoise = []*regexp.Regexp{
	regexp.MustCompile(`\s*\(type: [^,()]*, retryable: (true|false)\)`),
	regexp.MustCompile(`(activity|workflow execution|child workflow execution) error \([^()]*\): `),
}

// plainFailure is a failure's text as a person reads it: what went
// wrong, without the SDK's notes on how it travelled.
func plainFailure(err error) string {
	return plainText(err.Error())
}

// plainText is plainFailure for a message already taken out of its error
// (a result's error, an activity's last failure).
func plainText(msg string) string {
	for _, re := range sdkNoise {
		msg = re.ReplaceAllString(msg, "")
	}
	return strings.TrimSpace(msg)
}

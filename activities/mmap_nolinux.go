//go:build unix && !linux

package activities

const mapPopulate = 0

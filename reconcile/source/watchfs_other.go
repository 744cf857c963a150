//go:build !linux

package source

// remoteFS is not known off Linux: no filesystem is named.
func remoteFS(string) string { return "" }

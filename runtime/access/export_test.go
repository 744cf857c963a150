package access

// ForgetEffective empties the per-user memo, so a benchmark can measure the
// first query after a SCIM write.
func ForgetEffective() {
	effectiveMemo.mu.Lock()
	defer effectiveMemo.mu.Unlock()
	effectiveMemo.key, effectiveMemo.m = scimKey{}, nil
}

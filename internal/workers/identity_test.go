package workers

import "testing"

func TestIdentitySaysSlotsAndStore(t *testing.T) {
	for _, tc := range []struct {
		name, storeID, location, wantLocation string
	}{
		{"directory", "0a1b2c3d4e5f6a7b", "/home/u/.cache/batchfetch/blobs", "/home/u/.cache/batchfetch/blobs"},
		{"object store", "0a1b2c3d4e5f6a7b", "s3://batchfetch?endpoint=http://127.0.0.1:8333&region=us-east-1", "s3://batchfetch?endpoint=http://127.0.0.1:8333&region=us-east-1"},
		{"a user and password are left out", "0a1b", "s3://key:hunter2@bucket?region=x", "s3://bucket?region=x"},
		{"a password that does not parse is left out", "0a1b", "s3://key:hun/ter2@bucket", "s3://…@bucket"},
		{"an endpoint's password is left out", "0a1b", "s3://bucket?endpoint=http://k:hunter2@127.0.0.1:9", "s3://bucket?endpoint=http%3A%2F%2F127.0.0.1%3A9"},
		{"a path with @ in it", "0a1b", "/srv/a@b/blobs", "/srv/a@b/blobs"},
	} {
		id := fetchIdentity(250, "", tc.storeID, tc.location)
		if n, ok := FetchSlotsOf(id); !ok || n != 250 {
			t.Errorf("%s: FetchSlotsOf(%q) = %d, %v; want 250", tc.name, id, n, ok)
		}
		gotID, gotLoc, ok := StoreOf(id)
		if !ok || gotID != tc.storeID || gotLoc != tc.wantLocation {
			t.Errorf("%s: StoreOf(%q) = %q, %q, %v; want %q, %q", tc.name, id, gotID, gotLoc, ok, tc.storeID, tc.wantLocation)
		}
	}
	long := "/" + string(make([]byte, 400))
	if _, loc, ok := StoreOf(fetchIdentity(1, "", "ab", long)); !ok || loc != "" {
		t.Errorf("a location over %d bytes: %q, %v; want the identity without it", maxLocationInIdentity, loc, ok)
	}
	for _, old := range []string{"12@host@fetch-slots=8", "12@host", fetchIdentity(3, "", "", "/x")} {
		if _, _, ok := StoreOf(old); ok {
			t.Errorf("StoreOf(%q) says a store", old)
		}
	}
}

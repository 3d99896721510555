// Command buildweed builds, once, the SeaweedFS weed binary the TestS3
// tests run as their S3 server, and prints its path:
//
//	go run ./internal/s3test/buildweed
package main

import (
	"fmt"
	"os"

	"github.com/batchfetch/batchfetch/internal/s3test"
)

func main() {
	bin, err := s3test.Binary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(bin)
}

package process

import (
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // GIF headers
	_ "image/jpeg" // JPEG headers
	_ "image/png"  // PNG headers
	"io"
	"strings"

	_ "golang.org/x/image/webp" // WebP headers
)

// ImageResult is what the image step finds.
type ImageResult struct {
	Format string `json:"format"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// Image is the "image" step: the format and dimensions from the image's
// header (image.DecodeConfig), never a full decode, so a huge image costs
// a few kilobytes of reading. PNG, JPEG, GIF and WebP. A body that is none
// of them, or whose header is cut short, is an error.
type Image struct{}

// Process implements Processor.
func (Image) Process(_ context.Context, body io.Reader, _ Info, _ Env) (any, error) {
	cfg, format, err := image.DecodeConfig(body)
	switch {
	case errors.Is(err, image.ErrFormat):
		return nil, errors.New("not an image (PNG, JPEG, GIF or WebP)")
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		err != nil && (strings.Contains(err.Error(), "unexpected EOF") || strings.Contains(err.Error(), "short chunk")):
		// Some decoders format the end of input into their own error.
		return nil, errors.New("image header cut short: the body ends before its dimensions")
	case err != nil:
		return nil, fmt.Errorf("bad %s header: %w", formatName(format), err)
	}
	return ImageResult{Format: format, Width: cfg.Width, Height: cfg.Height}, nil
}

func formatName(f string) string {
	if f == "" {
		return "image"
	}
	return f
}

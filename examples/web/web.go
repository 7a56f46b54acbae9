package web

import "embed"

// Files are the page's files.
//
//go:embed index.html app.js style.css meshgate-client.js
var Files embed.FS

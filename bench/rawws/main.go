package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"sync"

	"github.com/gobwas/ws"
)

type hub struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "listen address")
	flag.Parse()
	h := &hub{conns: make(map[net.Conn]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		h.mu.Lock()
		h.conns[conn] = struct{}{}
		h.mu.Unlock()
		go func() { // read and discard until the client goes
			defer func() {
				h.mu.Lock()
				delete(h.conns, conn)
				h.mu.Unlock()
				conn.Close()
			}()
			var hdr [ws.MaxHeaderSize - 2]byte
			for {
				hd, err := ws.ReadHeaderBuffer(conn, hdr[:])
				if err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, conn, hd.Length); err != nil || hd.OpCode == ws.OpClose {
					return
				}
			}
		}()
	})
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		frame, _ := ws.CompileFrame(ws.NewTextFrame(body)) // encoded once
		h.mu.Lock()
		conns := make([]net.Conn, 0, len(h.conns))
		for c := range h.conns {
			conns = append(conns, c)
		}
		h.mu.Unlock()
		for _, c := range conns {
			_, _ = c.Write(frame)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("rawws listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}

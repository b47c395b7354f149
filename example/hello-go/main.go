// Command hello is a static Go HTTP server for the FROM scratch example.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	addr := ":8080"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Hello from Go")
	})
	log.Printf("hello-go listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}

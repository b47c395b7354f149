package main

import (
	"slices"
	"testing"
)

func TestGuessPorts(t *testing.T) {
	cases := []struct {
		name, src string
		want      []int
	}{
		{"node listen", "server.listen(8083, () => {})", []int{8083}},
		{"node listen, spaces", "app.listen( 3000 )", []int{3000}},
		{"node env default", "const port = process.env.PORT || 3000\napp.listen(port)", []int{3000}},
		{"node env default ??", "server.listen(process.env.PORT ?? 4000)", []int{4000}},
		{"node object", `server.listen({ port: 9000, host: "::" })`, []int{9000}},
		{"JSON-style key", `const cfg = {"port": 8001}`, []int{8001}},
		{"python keyword", "app.run(host='0.0.0.0', port=5000)", []int{5000}},
		{"python PORT = 8000", "PORT = 8000\nwith socketserver.TCPServer(('', PORT), Handler) as httpd:", []int{8000}},
		{"python PORT=8000", "PORT=8000", []int{8000}},
		{"python snake", "SERVER_PORT = 8080\nHTTP_PORT=8081", []int{8080, 8081}},
		{"camelCase", "let httpPort = 7000", []int{7000}},
		{"python annotation", "port: int = 8002", []int{8002}},
		{"python environ default", `port = int(os.environ.get("PORT", 8003))`, []int{8003}},
		{"python getenv string default", `port = int(os.getenv('PORT', '8004'))`, []int{8004}},
		{"python env or", `port = int(os.environ.PORT or 8005)`, []int{8005}},
		{"python tuple", `HTTPServer(("", 8006), H).serve_forever()`, []int{8006}},
		{"python tuple with host", `HTTPServer(("0.0.0.0", 8007), H)`, []int{8007}},
		{"order of appearance, once each", "PORT = 8000\nserver.listen(8083)\nport=8000", []int{8000, 8083}},
		{"support is no port", "support = 10\nreport: 55\nimport = 99", nil},
		{"a port variable without a number", "server.listen(port)\nPORT = os.environ['PORT']", nil},
		{"out of range", "PORT = 70000", nil},
		{"zero", "PORT = 00", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := guessPorts([]byte(c.src)); !slices.Equal(got, c.want) {
				t.Errorf("guessPorts(%q) = %v, want %v", c.src, got, c.want)
			}
		})
	}
}

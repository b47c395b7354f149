// The seed example: an HTTP server on port 8083 that answers "Hello World".
const http = require('http');

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('Hello World\n');
});

server.listen(8083, '0.0.0.0', () => {
  console.log('hi.js listening on 8083');
});

// A unikernel has no init system to ask the app to stop politely; the uni
// init forwards SIGTERM, so exit cleanly on it.
process.on('SIGTERM', () => server.close(() => process.exit(0)));

// Package web holds the example web page (index.html, app.js, style.css
// and the bundled @meshgate/client, meshgate-client.js, which `npm run
// build` in client/js writes). `meshgate serve --examples` serves it under
// /examples/; any static server (`npx serve examples/web`) serves it too.
package web

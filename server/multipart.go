package server

// multipartFraming is Apollo's multipart HTTP subscription protocol, which
// Apollo Client's HttpLink, Apollo Kotlin and Apollo iOS speak without a
// WebSocket: the client sends `Accept: multipart/mixed;subscriptionSpec=1.0`,
// the response is multipart/mixed with boundary "graphql", each result is
// a part `{"payload": <result>}`, an idle stream gets `{}` heartbeat parts,
// and the closing boundary `--graphql--` ends it. Errors are results with
// `errors` inside the payload, so their extensions.code reaches the
// application.
//
// Every part is written with the boundary that follows it, since a reader
// can only know a part is whole when it sees the next boundary.
type multipartFraming struct{}

const (
	multipartPart     = "\r\ncontent-type: application/json; charset=utf-8\r\n\r\n"
	multipartBoundary = "\r\n--graphql"
)

func (multipartFraming) contentType() string {
	return `multipart/mixed;boundary="graphql";subscriptionSpec="1.0"`
}

func (multipartFraming) open(dst []byte) []byte { return append(dst, multipartBoundary...) }

func (multipartFraming) result(dst []byte, _ uint64, body []byte) []byte {
	dst = append(dst, multipartPart...)
	dst = append(dst, `{"payload":`...)
	dst = append(dst, body...)
	dst = append(dst, '}')
	return append(dst, multipartBoundary...)
}

func (multipartFraming) heartbeat(dst []byte) []byte {
	dst = append(dst, multipartPart...)
	dst = append(dst, "{}"...)
	return append(dst, multipartBoundary...)
}

// end turns the last boundary into the closing one.
func (multipartFraming) end(dst []byte) []byte { return append(dst, "--\r\n"...) }

package model

import "time"

// Notification is one queue entry, for the resolvers that gqlgen executes.
// The streaming transports encode notifications without it (see graph/encode.go).
type Notification struct {
	Seq         Seq
	Kind        NotificationKind
	Resource    *string
	Etag        *string
	EtagUnknown bool
	PublishedAt time.Time
	Payload     JSON
	From        *Principal
}

// Queue describes one queue to its owner.
type Queue struct {
	Name              string
	CreatedAt         time.Time
	ExpiresAt         time.Time
	TTLSeconds        int
	Depth             int
	LastSeq           Seq
	SubscriptionCount int
}

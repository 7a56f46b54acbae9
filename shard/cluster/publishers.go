package cluster

import (
	"context"
	"errors"
	"maps"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// LocalPublishers is what a node's plugin host answers: authorization with
// the resource's etag, and the `publish` mutation.
type LocalPublishers interface {
	shard.Authorizer
	Publish(ctx context.Context, p shard.Principal, resource, etag string, payload []byte) (int, error)
}

// Publishers asks the publishers of the resource's owner node, so that a
// publisher keeping state in memory (the built-in `user:`) keeps each
// resource's etag on one node. On a single node it is local.
type Publishers struct{ n *Node }

// Publishers routes local's calls to each resource's owner. The node
// answers routed calls from other nodes with local too.
func (n *Node) Publishers(local LocalPublishers) *Publishers {
	n.mu.Lock()
	n.pubs = local
	n.mu.Unlock()
	return &Publishers{n: n}
}

// Authorize implements shard.Authorizer at the resource's owner.
func (p *Publishers) Authorize(ctx context.Context, pr shard.Principal, resource, proof string) (string, error) {
	return p.n.authorize(ctx, pr, resource, proof, false)
}

// Publish runs a `publish` mutation at the resource's owner.
func (p *Publishers) Publish(ctx context.Context, pr shard.Principal, resource, etag string, payload []byte) (int, error) {
	return p.n.publish(ctx, pr, resource, etag, payload, false)
}

func (n *Node) localPubs() LocalPublishers {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pubs
}

// ownerFor names the node whose publishers answer for resource ("": this
// one), and the ring identity it was chosen on. A call from another node
// (remote) is served here: its sender chose this node as the owner on
// the ring both share (see sameRing), so it is never sent on.
func (n *Node) ownerFor(resource string, remote bool) (string, uint64) {
	if remote || n.cfg.Gossip == "" {
		return "", 0
	}
	r := n.ring.Load()
	if o := r.Owner(resource); o != n.cfg.Name && n.isMember(o) {
		return o, r.ID()
	}
	return "", 0
}

func (n *Node) authorize(ctx context.Context, pr shard.Principal, resource, proof string, remote bool) (string, error) {
	if o, id := n.ownerFor(resource, remote); o != "" {
		if p := n.peer(o); p != nil {
			rep, err := p.client.Authorize(ctx, &pb.AuthorizeRequest{Principal: principalPB(pr), Resource: resource, Proof: proof, Ring: id})
			if err == nil {
				return rep.GetEtag(), nil
			}
			if err = fromStatus(o, err); !errors.Is(err, shard.ErrUnavailable) {
				return "", err
			}
			// The owner is unreachable: answer here rather than fail.
		}
	}
	l := n.localPubs()
	if l == nil {
		return "", shard.ErrUnavailable
	}
	return l.Authorize(ctx, pr, resource, proof)
}

func (n *Node) publish(ctx context.Context, pr shard.Principal, resource, etag string, payload []byte, remote bool) (int, error) {
	if o, id := n.ownerFor(resource, remote); o != "" {
		if p := n.peer(o); p != nil {
			// Invariant: a publish sent on has a deadline, which the owner
			// serves it by (serveIntercept); with none, one that waited in
			// a frozen owner's socket was stamped when it thawed.
			ctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			rep, err := p.client.Publish(ctx, &pb.PublishRequest{Principal: principalPB(pr), Resource: resource, Etag: etag, Payload: payload, Ring: id})
			if err != nil {
				return 0, fromStatus(o, err)
			}
			return int(rep.GetReached()), nil
		}
	}
	l := n.localPubs()
	if l == nil {
		return 0, shard.ErrUnavailable
	}
	return l.Publish(ctx, pr, resource, etag, payload)
}

func (s service) Authorize(ctx context.Context, r *pb.AuthorizeRequest) (*pb.AuthorizeReply, error) {
	etag, err := s.n.authorize(ctx, principalOf(r.GetPrincipal()), r.GetResource(), r.GetProof(), true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.AuthorizeReply{Etag: etag}, nil
}

func (s service) Publish(ctx context.Context, r *pb.PublishRequest) (*pb.PublishReply, error) {
	k, err := s.n.publish(ctx, principalOf(r.GetPrincipal()), r.GetResource(), r.GetEtag(), r.GetPayload(), true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.PublishReply{Reached: int64(k)}, nil
}

// current asks each resource's owner for its publisher's current etag,
// for the RESYNC notifications of a repair: a publisher keeping etags in
// memory knows them on the owner only. A resource whose owner does not
// answer is absent, so its RESYNC says "unknown" rather than a stale etag.
func (n *Node) current(ctx context.Context, resources []string) map[string]string {
	if n.cfg.Current == nil || len(resources) == 0 {
		return map[string]string{}
	}
	byOwner := map[string][]string{}
	for _, r := range resources {
		o, _ := n.ownerFor(r, false)
		byOwner[o] = append(byOwner[o], r)
	}
	out := make(map[string]string, len(resources))
	for o, rs := range byOwner {
		if o == "" {
			maps.Copy(out, n.cfg.Current(ctx, rs))
			continue
		}
		p := n.peer(o)
		if p == nil {
			continue
		}
		rep, err := p.client.Current(ctx, &pb.CurrentRequest{Resources: rs})
		if err != nil {
			n.log.Warn("RESYNC etags unknown: the owner did not answer", "peer", o, "resources", len(rs), "err", err)
			continue
		}
		maps.Copy(out, rep.GetEtags())
	}
	return out
}

func (s service) Current(ctx context.Context, r *pb.CurrentRequest) (*pb.CurrentReply, error) {
	if s.n.cfg.Current == nil {
		return &pb.CurrentReply{}, nil
	}
	return &pb.CurrentReply{Etags: s.n.cfg.Current(ctx, r.GetResources())}, nil
}

package slack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/internal/retry"
)

// runSocket receives events over Socket Mode until ctx ends. slack-go's
// client opens the connection (apps.connections.open with the app token),
// reconnects when Slack sends disconnect, when the connection drops and
// when Slack stops pinging, and retries failed connection attempts with
// backoff. runSocket restarts it, after a capped backoff, when it gives up
// (rejected app token, a server refusing connections): rejected credentials
// also mark the adapter unhealthy.
//
// Events are handled one at a time, in the order they arrive, through the
// same code as the HTTP endpoint; an envelope is acknowledged only after its
// message was stored, so Slack redelivers what a crash interrupted. After a
// reconnect (not the first connection) it asks the gateway for a catch-up
// (Deps.RequestCatchUp), which fetches what Slack did not redeliver.
func (a *Adapter) runSocket(ctx context.Context) {
	client := socketmode.New(a.api, socketmode.OptionLog(slogOutput{a.log}))
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.consumeSocket(ctx, client) })
	defer func() {
		cancel()
		wg.Wait()
		a.metrics.socket.Set(0)
	}()
	bo := retry.Backoff{Min: time.Second, Max: 5 * time.Minute}
	for {
		started := time.Now()
		err := client.RunContext(ctx)
		if ctx.Err() != nil {
			return
		}
		a.metrics.socket.Set(0)
		var se slack.SlackErrorResponse
		if errors.As(err, &se) && authErrors[se.Err] {
			a.health.Reject(credApp, se.Err)
		}
		if time.Since(started) > 10*time.Minute {
			bo.Reset() // it ran fine for a while: start over
		}
		wait := bo.Next()
		a.log.Error("socket mode stopped; restarting", "err", err, "in", wait)
		if !retry.Sleep(ctx, wait) {
			return
		}
	}
}

// consumeSocket handles the client's events until ctx ends.
func (a *Adapter) consumeSocket(ctx context.Context, client *socketmode.Client) {
	for {
		var evt socketmode.Event
		select {
		case <-ctx.Done():
			return
		case evt = <-client.Events:
		}
		switch evt.Type {
		case socketmode.EventTypeConnecting:
			a.metrics.socket.Set(0)
			a.log.Debug("socket mode connecting")
		case socketmode.EventTypeConnected:
			a.metrics.socket.Set(1)
			a.health.Accept(credApp)
			a.log.Info("socket mode connected")
			// Before this connection's events: they must not move a mark
			// past what was missed while it was down.
			a.socketConnected(ctx)
		case socketmode.EventTypeConnectionError:
			a.metrics.socket.Set(0)
			if ce, ok := evt.Data.(*slack.ConnectionErrorEvent); ok {
				a.log.Warn("socket mode connection failed", "attempt", ce.Attempt, "err", ce.ErrorObj, "retry_in", ce.Backoff)
			}
		case socketmode.EventTypeInvalidAuth:
			a.health.Reject(credApp, "apps.connections.open: not found")
		case socketmode.EventTypeErrorBadMessage:
			// slack-go could not parse the envelope's event (an inner event
			// type it does not know): handle the envelope here, so that it
			// is acknowledged rather than redelivered forever.
			bad, ok := evt.Data.(*socketmode.ErrorBadMessage)
			if !ok {
				continue
			}
			var req socketmode.Request
			if json.Unmarshal(bad.Message, &req) == nil && req.Type == socketmode.RequestTypeEventsAPI && req.EnvelopeID != "" {
				a.handleEnvelope(ctx, client, &req)
				continue
			}
			a.log.Warn("socket mode: unreadable message", "err", bad.Cause)
		case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorWriteFailed:
			a.log.Warn("socket mode error", "type", evt.Type, "data", evt.Data)
		case socketmode.EventTypeEventsAPI:
			if evt.Request != nil {
				a.handleEnvelope(ctx, client, evt.Request)
			}
		case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive:
			// Not handled; acknowledged so that Slack does not keep retrying.
			if evt.Request != nil {
				_ = client.AckCtx(ctx, evt.Request.EnvelopeID, nil)
			}
		}
	}
}

// handleEnvelope processes an events_api envelope and acknowledges it once
// its message is stored, or when it can never be (a malformed payload).
func (a *Adapter) handleEnvelope(ctx context.Context, client *socketmode.Client, req *socketmode.Request) {
	if _, err := a.process(ctx, req.Payload, "socket"); err != nil {
		if hook.Code(err) != http.StatusBadRequest {
			// Not acknowledged: Slack delivers the envelope again.
			a.log.Warn("socket mode event not handled; slack will redeliver", "envelope", req.EnvelopeID, "retry", req.RetryAttempt, "err", err)
			return
		}
		a.log.Warn("socket mode event malformed; acknowledged and dropped", "envelope", req.EnvelopeID, "err", err)
	}
	if err := client.AckCtx(ctx, req.EnvelopeID, nil); err != nil && ctx.Err() == nil {
		a.log.Warn("socket mode ack failed", "envelope", req.EnvelopeID, "err", err)
	}
}

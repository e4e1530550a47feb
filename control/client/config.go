package client

import (
	"encoding/json"
	"fmt"
	"time"
)

// ReqConfig is the request line of "pwctl config": a JSON ConfigRequest
// follows on the next line, and a ConfigAnswer comes back. Root only.
const ReqConfig = "config"

// MaxConfigFile is the largest configuration file pwctl config apply
// takes: a large one is a few kilobytes, and fifty revisions of it must fit
// the appliance's data partition.
const MaxConfigFile = 64 << 10

// ConfigRequest asks pwgated to change or show its configuration file.
type ConfigRequest struct {
	// Verb is apply, confirm, rollback, history, diff or show.
	Verb string `json:"verb"`
	// File is the new configuration (apply).
	File string `json:"file,omitempty"`
	// Confirm is how long, in seconds, the change waits for "confirm"
	// before the previous revision is put back (apply, rollback); 0: no
	// confirmation.
	Confirm float64 `json:"confirm,omitempty"`
	// Message and Who are kept with the revision (apply, rollback).
	Message string `json:"message,omitempty"`
	Who     string `json:"who,omitempty"`
	// N and M name revisions (rollback, diff, show); 0: the running file.
	N int `json:"n,omitempty"`
	M int `json:"m,omitempty"`
}

// ConfigAnswer is pwgated's answer to a ConfigRequest.
type ConfigAnswer struct {
	Error string `json:"error,omitempty"`
	// Revision is the revision running after apply, rollback or confirm.
	Revision int `json:"revision,omitempty"`
	// Pending is the change waiting for confirmation, if any.
	Pending *ConfigPending `json:"pending,omitempty"`
	// History lists the revisions, newest first (history).
	History []ConfigRevision `json:"history,omitempty"`
	// Text is a diff or a file (diff, show).
	Text string `json:"text,omitempty"`
}

// ConfigPending is a change applied with a confirmation window.
type ConfigPending struct {
	Revision int       `json:"revision"`       // the change
	Rollback int       `json:"rollback"`       // put back unless confirmed
	Deadline time.Time `json:"deadline"`       // by then
	Boot     string    `json:"boot,omitempty"` // the kernel's boot ID when applied
}

// ConfigRevision is one kept configuration file.
type ConfigRevision struct {
	N       int       `json:"n"`
	Time    time.Time `json:"time"`
	Who     string    `json:"who,omitempty"`
	Message string    `json:"message,omitempty"`
	Size    int       `json:"size"`
	Running bool      `json:"running,omitempty"` // the file pwgated runs
}

// ConfigDo sends req to the pwgated at socket and returns its answer; an
// answer with an error is returned as one.
func ConfigDo(socket string, req ConfigRequest, timeout time.Duration) (ConfigAnswer, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return ConfigAnswer{}, err
	}
	b, err := Query(socket, ReqConfig+"\n"+string(body), timeout)
	if err != nil {
		return ConfigAnswer{}, err
	}
	var a ConfigAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return ConfigAnswer{}, fmt.Errorf("pwgated at %s: %w", socket, err)
	}
	return a, nil
}

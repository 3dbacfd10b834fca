package audit

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"
	"time"

	"github.com/kmsd/kmsd/api"
)

// EventVersion is the CloudTrail record version kmsd's records follow.
const EventVersion = "1.08"

// Event is one CloudTrail-shaped record of a KMS API call. The chain
// fields (kmsdSeq, kmsdPrevHash) are appended by the Writer.
type Event struct {
	EventVersion       string          `json:"eventVersion"`
	UserIdentity       UserIdentity    `json:"userIdentity"`
	EventTime          string          `json:"eventTime"`
	EventSource        string          `json:"eventSource"`
	EventName          string          `json:"eventName"`
	AWSRegion          string          `json:"awsRegion"`
	SourceIPAddress    string          `json:"sourceIPAddress"`
	UserAgent          string          `json:"userAgent"`
	ErrorCode          string          `json:"errorCode,omitempty"`
	ErrorMessage       string          `json:"errorMessage,omitempty"`
	RequestParameters  json.RawMessage `json:"requestParameters"`
	ResponseElements   json.RawMessage `json:"responseElements"`
	RequestID          string          `json:"requestID"`
	EventID            string          `json:"eventID"`
	ReadOnly           bool            `json:"readOnly"`
	Resources          []Resource      `json:"resources,omitempty"`
	EventType          string          `json:"eventType"`
	ManagementEvent    bool            `json:"managementEvent"`
	RecipientAccountID string          `json:"recipientAccountId"`
	EventCategory      string          `json:"eventCategory"`
	// NodeID names the kmsd node that answered (not a CloudTrail field).
	NodeID string `json:"kmsdNodeId,omitempty"`
}

// UserIdentity is CloudTrail's userIdentity.
type UserIdentity struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId,omitempty"`
	ARN         string `json:"arn,omitempty"`
	AccountID   string `json:"accountId,omitempty"`
	AccessKeyID string `json:"accessKeyId,omitempty"`
	UserName    string `json:"userName,omitempty"`
}

// Resource is one entry of CloudTrail's resources.
type Resource struct {
	ARN       string `json:"ARN"`
	Type      string `json:"type"`
	AccountID string `json:"accountId"`
}

// Field handling of request parameters and response elements. Fields are
// allow-listed by name at every depth: a member whose name is in none of
// these sets is dropped, so a field added to the API later is left out of
// the log until someone decides it is safe. Plaintext, CiphertextBlob,
// PrivateKeyPlaintext, PrivateKeyCiphertextBlob, Mac, Message, Signature,
// GrantToken(s), Recipient, ImportToken and EncryptedKeyMaterial are
// deliberately absent.
var (
	// keepScalar members are copied when they are strings, numbers,
	// booleans or lists of those.
	keepScalar = setOf(
		"KeyId", "KeyArn", "Arn", "AliasName", "AliasArn", "TargetKeyId", "Description",
		"KeyUsage", "KeySpec", "CustomerMasterKeySpec", "Origin", "KeyState", "Enabled",
		"CreationDate", "DeletionDate", "ValidTo", "ExpirationModel", "KeyManager",
		"EncryptionAlgorithm", "EncryptionAlgorithms", "SigningAlgorithm", "SigningAlgorithms",
		"MacAlgorithm", "MacAlgorithms", "NumberOfBytes", "Limit", "Marker", "NextMarker", "Truncated",
		"PendingWindowInDays", "PendingDeletionWindowInDays", "GrantId", "Name", "GranteePrincipal",
		"RetiringPrincipal", "GranteeServicePrincipal", "RetiringServicePrincipal", "Operations",
		"IssuingAccount", "TagKey", "TagValue", "TagKeys", "PolicyName", "PolicyNames", "Policy",
		"BypassPolicyLockoutSafetyCheck", "KeyRotationEnabled", "RotationPeriodInDays",
		"NextRotationDate", "OnDemandRotationStartDate", "RotationDate", "RotationType",
		"KeyMaterialId", "CurrentKeyMaterialId", "KeyMaterialState", "KeyPairSpec", "MessageType",
		"SignatureValid", "MacValid", "DryRun", "MultiRegion", "AWSAccountId", "LastUpdatedDate",
		"SourceKeyId", "DestinationKeyId", "SourceEncryptionAlgorithm", "DestinationEncryptionAlgorithm",
		"SourceKeyMaterialId", "DestinationKeyMaterialId", "CustomKeyStoreId", "XksKeyId",
		"IncludeKeyMaterial", "PublicKey", "SourceArn", "WrappingAlgorithm", "WrappingKeySpec",
		"ImportType", "KeyMaterialDescription",
	)
	// keepVerbatim members are copied whole: maps whose keys are chosen by
	// the caller (encryption contexts are logged by AWS too).
	keepVerbatim = setOf(
		"EncryptionContext", "SourceEncryptionContext", "DestinationEncryptionContext",
		"EncryptionContextEquals", "EncryptionContextSubset",
	)
	// recurse members are objects, or lists of objects, filtered by the
	// same rules.
	recurse = setOf("KeyMetadata", "Constraints", "Tags", "Keys", "Aliases", "Grants", "Rotations",
		"MultiRegionConfiguration", "PrimaryKey", "ReplicaKeys", "XksKeyConfiguration")
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// writeOperations are the operations CloudTrail marks readOnly false.
var writeOperations = setOf(
	"CreateKey", "UpdateKeyDescription", "EnableKey", "DisableKey", "ScheduleKeyDeletion",
	"CancelKeyDeletion", "CreateAlias", "UpdateAlias", "DeleteAlias", "TagResource", "UntagResource",
	"EnableKeyRotation", "DisableKeyRotation", "RotateKeyOnDemand", "PutKeyPolicy", "CreateGrant",
	"RetireGrant", "RevokeGrant", "ImportKeyMaterial", "DeleteImportedKeyMaterial",
)

// Filter returns the allow-listed members of a JSON object, with member
// names in CloudTrail's lower camel case, or nil (JSON null) if body is
// empty, not a JSON object, or keeps nothing.
func Filter(body []byte) json.RawMessage {
	var buf [16]member
	ms, ok := parseTop(body, buf[:0])
	return filterParsed(body, ms, ok)
}

// filterParsed is Filter of body, which parseTop parsed into ms if ok.
func filterParsed(body []byte, ms []member, ok bool) json.RawMessage {
	return filterParsedTo(nil, body, ms, ok)
}

// filterParsedTo is filterParsed writing into dst's space when the fast
// path takes body (the result then aliases dst).
func filterParsedTo(dst, body []byte, ms []member, ok bool) json.RawMessage {
	if ok {
		if out, ok := filterMembersTo(dst, ms); ok {
			return out
		}
	}
	return filterSlow(body)
}

// filterSlow is the reference Filter (see fastjson.go).
func filterSlow(body []byte) json.RawMessage {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil
	}
	out := filterObject(m)
	if len(out) == 0 {
		return nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	return b
}

func filterObject(m map[string]json.RawMessage) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		name := lowerFirst(k)
		switch {
		case keepVerbatim[k]:
			if json.Valid(v) {
				out[name] = v
			}
		case keepScalar[k]:
			if scalarOrScalarList(v) {
				out[name] = v
			}
		case recurse[k]:
			if f := filterValue(v); f != nil {
				out[name] = f
			}
		}
	}
	return out
}

// filterValue filters an object or a list of objects.
func filterValue(v json.RawMessage) any {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err == nil && obj != nil {
		return filterObject(obj)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err == nil && list != nil {
		res := make([]any, 0, len(list))
		for _, e := range list {
			if f := filterValue(e); f != nil {
				res = append(res, f)
			} else if scalarOrScalarList(e) {
				res = append(res, e)
			}
		}
		return res
	}
	return nil
}

// scalarOrScalarList reports whether v is a JSON string, number, boolean,
// null or a list of those.
func scalarOrScalarList(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return false
	}
	switch v[0] {
	case '{':
		return false
	case '[':
		var list []json.RawMessage
		if json.Unmarshal(v, &list) != nil {
			return false
		}
		for _, e := range list {
			if e = bytes.TrimSpace(e); len(e) == 0 || e[0] == '{' || e[0] == '[' {
				return false
			}
		}
		return true
	}
	return json.Valid(v)
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}

// BuildEvent turns an api.AuditEvent into a CloudTrail record for region
// and account (the key owner: recipientAccountId).
func BuildEvent(ev api.AuditEvent, region, accountID, nodeID string) Event {
	return buildEvent(ev, region, accountID, nodeID, newUUID())
}

// buildEvent is BuildEvent with the event id given.
func buildEvent(ev api.AuditEvent, region, accountID, nodeID, eventID string) Event {
	// Each body is scanned once, for its parameters and its resources.
	var reqBuf, respBuf [16]member
	reqM, reqOK := parseTop(ev.Request, reqBuf[:0])
	respM, respOK := parseTop(ev.Response, respBuf[:0])
	in := headInputsOf(&ev)
	e := eventHead(&in, region)
	e.ErrorCode = ev.ErrorCode
	e.ErrorMessage = ev.ErrorMessage
	e.RequestParameters = filterParsed(ev.Request, reqM, reqOK)
	e.ResponseElements = filterParsed(ev.Response, respM, respOK)
	e.RequestID = ev.Info.RequestID
	e.EventID = eventID
	e.ReadOnly = readOnly(ev.Operation)
	setEventTail(&e, accountID, nodeID)
	rs := resourceSet{region: region, account: accountID}
	rs.addBody(ev.Request, reqM, reqOK)
	rs.addBody(ev.Response, respM, respOK)
	e.Resources = rs.out
	return e
}

// headInputs are all that an event's head (appendEventHead: the fields
// from EventVersion to UserAgent) is derived from, besides the region:
// events with the same inputs have the same head.
type headInputs struct {
	operation, sourceIP, userAgent string
	arn, account, accessKeyID      string // the caller's
	time                           time.Time
}

func headInputsOf(ev *api.AuditEvent) headInputs {
	c := &ev.Info.Caller
	return headInputs{operation: ev.Operation, sourceIP: ev.Info.SourceIP, userAgent: ev.Info.UserAgent,
		arn: c.ARN, account: c.AccountID, accessKeyID: c.AccessKeyID, time: ev.Time}
}

// same reports whether the heads of in and o are the same: equal strings,
// and the same instant (eventTime is in UTC, whatever the location or
// monotonic reading).
func (in *headInputs) same(o *headInputs) bool {
	return in.operation == o.operation && in.sourceIP == o.sourceIP && in.userAgent == o.userAgent &&
		in.arn == o.arn && in.account == o.account && in.accessKeyID == o.accessKeyID && in.time.Equal(o.time)
}

// eventHead is an Event with the head's fields set.
func eventHead(in *headInputs, region string) Event {
	return Event{
		EventVersion:    EventVersion,
		UserIdentity:    identity(in.arn, in.account, in.accessKeyID),
		EventTime:       in.time.UTC().Format(time.RFC3339),
		EventSource:     "kms.amazonaws.com",
		EventName:       in.operation,
		AWSRegion:       region,
		SourceIPAddress: in.sourceIP,
		UserAgent:       in.userAgent,
	}
}

// setEventTail sets the fields of appendEventTail, which depend on the
// writer only.
func setEventTail(e *Event, accountID, nodeID string) {
	e.EventType = "AwsApiCall"
	e.ManagementEvent = true
	e.RecipientAccountID = accountID
	e.EventCategory = "Management"
	e.NodeID = nodeID
}

// readOnly is an operation's readOnly.
func readOnly(operation string) bool {
	return operation != api.OperationUnknown && !writeOperations[operation]
}

// identity derives CloudTrail's userIdentity from the caller's ARN.
func identity(arn, account, akid string) UserIdentity {
	u := UserIdentity{ARN: arn, AccountID: account, AccessKeyID: akid, Type: "Unknown"}
	// The ARN's six colon-separated fields, the last one holding any
	// further colons (strings.SplitN(arn, ":", 6) without its allocation).
	var parts [6]string
	rest := arn
	for i := range 5 {
		p, r, ok := strings.Cut(rest, ":")
		if !ok {
			return u
		}
		parts[i], rest = p, r
	}
	parts[5] = rest
	if parts[0] == "arn" {
		if u.AccountID == "" {
			u.AccountID = parts[4]
		}
		res := parts[5]
		switch {
		case parts[2] == "iam" && res == "root":
			u.Type, u.PrincipalID = "Root", u.AccountID
		case parts[2] == "iam" && strings.HasPrefix(res, "user/"):
			u.Type = "IAMUser"
			u.UserName = res[strings.LastIndexByte(res, '/')+1:]
		case parts[2] == "sts" && strings.HasPrefix(res, "assumed-role/"):
			u.Type = "AssumedRole"
		case parts[2] == "iam" && strings.HasPrefix(res, "role/"):
			u.Type = "AssumedRole"
		}
	}
	return u
}

// addBody adds the KMS keys body names by ARN or key id to the event's
// resources (aliases cannot be resolved here and are left out); ms is
// body parsed by parseTop if ok.
func (s *resourceSet) addBody(body []byte, ms []member, ok bool) {
	if ok {
		if ids, skip, ok := resourceIDs(ms); ok {
			if !skip {
				for _, id := range ids {
					if len(id) > 0 {
						s.addBytes(id)
					}
				}
			}
			return
		}
	}
	s.addSlow(body)
}

// addSlow is the reference addBody (see fastjson.go).
func (s *resourceSet) addSlow(body []byte) {
	var m struct {
		KeyID         string `json:"KeyId"`
		KeyArn        string `json:"KeyArn"`
		TargetKeyID   string `json:"TargetKeyId"`
		SourceKeyID   string `json:"SourceKeyId"`
		DestinationID string `json:"DestinationKeyId"`
		KeyMetadata   *struct {
			Arn string `json:"Arn"`
		} `json:"KeyMetadata"`
	}
	if len(body) == 0 || json.Unmarshal(body, &m) != nil {
		return
	}
	for _, id := range []string{m.KeyID, m.KeyArn, m.TargetKeyID, m.SourceKeyID, m.DestinationID} {
		s.add(id)
	}
	if m.KeyMetadata != nil {
		s.add(m.KeyMetadata.Arn)
	}
}

// keyARN returns the key ARN id names: id itself if it is a key ARN, the
// ARN in region and account if it is a bare key id, else "".
func keyARN(id, region, account string) string {
	switch {
	case strings.HasPrefix(id, "arn:") && strings.Contains(id, ":key/"):
		return id
	case isKeyID(id):
		return "arn:aws:kms:" + region + ":" + account + ":key/" + id
	}
	return ""
}

// isKeyID reports whether s looks like a key id (a UUID, or mrk- and 32
// hex digits).
func isKeyID[T string | []byte](s T) bool {
	if len(s) == 4+32 && string(s[:4]) == "mrk-" {
		for i := 4; i < len(s); i++ {
			if !isHex(s[i]) {
				return false
			}
		}
		return true
	}
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		switch c := s[i]; i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	var s [uuidLen]byte
	return string(appendUUID(s[:0], b[:]))
}

// uuidLen is the length of a formatted UUID.
const uuidLen = 36

// appendUUID appends the version 4 UUID of 16 random bytes r (the version
// and variant bits overwritten) in its 8-4-4-4-12 hex form.
func appendUUID(dst, r []byte) []byte {
	const digits = "0123456789abcdef"
	for i, c := range r[:16] {
		switch i {
		case 4, 6, 8, 10:
			dst = append(dst, '-')
		}
		switch i {
		case 6:
			c = c&0x0f | 0x40
		case 8:
			c = c&0x3f | 0x80
		}
		dst = append(dst, digits[c>>4], digits[c&0x0f])
	}
	return dst
}

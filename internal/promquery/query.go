package promquery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// DefaultTimeout bounds a query whose context has no earlier deadline.
const DefaultTimeout = 30 * time.Second

// Kind says what a query's answer was.
type Kind int

const (
	// KindValue is one finite number.
	KindValue Kind = iota
	// KindNoData is an empty result: no series matched (yet).
	KindNoData
	// KindNaN is one sample that is NaN or ±Inf (e.g. a ratio over zero traffic).
	KindNaN
	// KindError is a query that failed or whose answer cannot be read as one number.
	KindError
)

func (k Kind) String() string {
	switch k {
	case KindValue:
		return "Value"
	case KindNoData:
		return "NoData"
	case KindNaN:
		return "NaN"
	case KindError:
		return "Error"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Result is a query's answer reduced to one number.
type Result struct {
	// Value is the number, meaningful for KindValue (and NaN or ±Inf for KindNaN).
	Value float64
	// Samples is how many series (or the one scalar) the query returned.
	Samples int
	// Kind says whether Value can be judged.
	Kind Kind
	// Warnings are what Prometheus reported beside the answer.
	Warnings []string
}

// ErrMultipleSeries is wrapped by Query's error when the query returns more than one series.
var ErrMultipleSeries = errors.New("query must return a single series")

// Query runs query as an instant query at time at (the server's now when at is zero) against the
// Prometheus HTTP API at address (http[s]://host:port[/prefix]) and reduces the answer:
//
//   - a vector of exactly one sample, or a scalar, gives KindValue (KindNaN if NaN or ±Inf);
//   - an empty vector gives KindNoData, with no error;
//   - a vector of several series is an error wrapping ErrMultipleSeries, naming the count: the
//     query must aggregate (sum, max, ...) them;
//   - a range vector, a string, a native-histogram sample, or a failed request is an error.
//
// Every error comes with Kind KindError and names the address without its user info. The request
// is bounded by ctx and by DefaultTimeout.
func Query(ctx context.Context, address, query string, at time.Time) (Result, error) {
	redacted := redactAddress(address)
	fail := func(res Result, err error) (Result, error) {
		res.Kind = KindError
		return res, &queryError{address: redacted, err: err, secrets: secretsOf(address)}
	}
	if strings.TrimSpace(query) == "" {
		return fail(Result{}, errors.New("empty query"))
	}
	u, err := url.Parse(address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail(Result{}, errors.New("address must be an http or https URL with a host"))
	}

	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	client, err := api.NewClient(api.Config{Address: address})
	if err != nil {
		return fail(Result{}, err)
	}
	var opts []promv1.Option
	if deadline, ok := ctx.Deadline(); ok {
		// Let Prometheus give up on the evaluation too, rather than run on after we left.
		if t := evalTimeout(time.Until(deadline)); t > 0 {
			opts = append(opts, promv1.WithTimeout(t))
		}
	}
	value, warnings, err := promv1.NewAPI(client).Query(ctx, query, at, opts...)
	res := Result{Warnings: warnings}
	if err != nil {
		redactURLError(err)
		return fail(res, err)
	}

	switch v := value.(type) {
	case model.Vector:
		res.Samples = len(v)
		switch len(v) {
		case 0:
			res.Kind = KindNoData
			return res, nil
		case 1:
			if v[0].Histogram != nil {
				return fail(res, errors.New("query returned a native histogram sample, not a number"))
			}
			res.Value = float64(v[0].Value)
		default:
			return fail(res, fmt.Errorf("%w, got %d series: aggregate them (e.g. sum(...) or max(...))",
				ErrMultipleSeries, len(v)))
		}
	case *model.Scalar:
		res.Samples = 1
		res.Value = float64(v.Value)
	case model.Matrix:
		res.Samples = len(v)
		return fail(res, errors.New("query returned a range vector: apply a function such as rate() to it"))
	case nil:
		return fail(res, errors.New("no result in the answer"))
	default:
		return fail(res, fmt.Errorf("query returned a %s, not a number", value.Type()))
	}
	if math.IsNaN(res.Value) || math.IsInf(res.Value, 0) {
		res.Kind = KindNaN
	} else {
		res.Kind = KindValue
	}
	return res, nil
}

// evalTimeout rounds d down to what the client sends in a form Prometheus parses: the client
// writes time.Duration's String(), and Prometheus takes "5s" or "250ms" but not "4.999s".
func evalTimeout(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Truncate(time.Second)
	}
	return d.Truncate(time.Millisecond)
}

// queryError names the Prometheus address and keeps the user info of the configured address out of
// its message.
type queryError struct {
	address string
	err     error
	secrets []string
}

func (e *queryError) Error() string {
	msg := e.err.Error()
	for _, s := range e.secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return fmt.Sprintf("querying Prometheus at %s: %s", e.address, msg)
}

func (e *queryError) Unwrap() error { return e.err }

// redactAddress returns address without user info, query or fragment, for messages.
func redactAddress(address string) string {
	u, err := url.Parse(address)
	if err != nil {
		// Do not echo what could not be parsed: it may hold a password.
		return "(unparsable address)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// secretsOf returns the parts of address that must not reach a message: its user info as written
// in a URL, and its password when that is long enough to be told apart from ordinary text.
func secretsOf(address string) []string {
	u, err := url.Parse(address)
	if err != nil {
		return []string{address}
	}
	if u.User == nil {
		return nil
	}
	s := []string{u.User.String() + "@"}
	if p, ok := u.User.Password(); ok && len(p) >= 6 {
		s = append(s, p, url.QueryEscape(p), url.PathEscape(p))
	}
	return s
}

// redactURLError drops the user info from the URL that net/http puts in its errors.
func redactURLError(err error) {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.User = nil
			u.RawQuery = ""
			ue.URL = u.String()
		}
	}
}

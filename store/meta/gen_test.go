package meta

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
)

// world is a deterministic synthetic installation: tenants, groups, users
// and a stream of recordings with realistic distributions (see the brief:
// ~2,000 users in ~50 groups in 3 tenants, notes on ~5 %, ratings ~10 %,
// preserved ~1 %, bookmarks ~10 %, spread over ~12 months).
type world struct {
	rng     *rand.Rand
	users   []User
	groups  []Group
	from    time.Time
	span    time.Duration
	ids     []string // recordings created so far
	remotes []RemoteParty
	seq     int
}

var (
	firstNames = strings.Fields("Anna Ben Clara David Emma Felix Greta Hans Ida Jonas Klara Lukas Mia Noah Olga Paul Rosa Sven Tara Uwe Vera Willi Xenia Yusuf Zoe Ali Björn Chloé Dario Élise")
	lastNames  = strings.Fields("Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein Wolf Schröder Neumann Schwarz Braun Zimmermann Krüger Hartmann Lange Werner Krause Lehmann Köhler Maier Walter König Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn Vogel")
	noteWords  = strings.Fields("customer refund invoice complaint escalate contract renewal cancel upgrade billing address payment card delivery delay broken replacement warranty technician appointment password reset account locked fraud suspicious transfer supervisor callback urgent satisfied angry discount offer promotion quote order tracking return label")
	categories = strings.Fields("sales support billing complaint retention onboarding technical fraud survey other")
	relations  = []string{"transfer", "consultation", "conference"}
)

func newWorld(seed uint64, nUsers, nGroups, nTenants int, span time.Duration) *world {
	w := &world{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		from: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), span: span}
	for i := range nGroups {
		w.groups = append(w.groups, Group{ID: fmt.Sprintf("g%02d", i), Tenant: fmt.Sprintf("t%d", i%nTenants), Name: fmt.Sprintf("Team %d", i)})
	}
	for i := range nUsers {
		g := w.groups[i%nGroups]
		w.users = append(w.users, User{ID: fmt.Sprintf("u%04d", i), Tenant: g.Tenant, Username: fmt.Sprintf("user%04d", i),
			DisplayName: firstNames[i%len(firstNames)] + " " + lastNames[i%len(lastNames)], Role: RoleUser,
			Groups: []string{g.ID}, Permissions: Permissions{Play: true}, Created: w.from})
	}
	// A pool of remote parties: customers call more than once.
	for range max(nUsers*20, 100) {
		w.remotes = append(w.remotes, RemoteParty{
			Number: fmt.Sprintf("+49 %d %07d", 30+w.rng.IntN(900), w.rng.IntN(10_000_000)),
			Name:   firstNames[w.rng.IntN(len(firstNames))] + " " + lastNames[w.rng.IntN(len(lastNames))],
		})
	}
	return w
}

// setup returns the commands that create tenants, groups and users.
func (w *world) setup() []Command {
	var cmds []Command
	tenants := map[string]bool{}
	for _, g := range w.groups {
		if !tenants[g.Tenant] {
			tenants[g.Tenant] = true
			cmds = append(cmds, &CreateTenant{Tenant: Tenant{ID: g.Tenant, Name: "Tenant " + g.Tenant}})
		}
		cmds = append(cmds, &CreateGroup{Group: g})
	}
	for _, u := range w.users {
		cmds = append(cmds, &CreateUser{User: u})
	}
	return cmds
}

// v7 builds a UUIDv7 for ms from the world's random stream.
func (w *world) v7(ms int64) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[8:], w.rng.Uint64())
	binary.BigEndian.PutUint16(u[6:], uint16(w.rng.Uint32()))
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(ms))
	copy(u[:6], t[2:])
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	return u.String()
}

func (w *world) text(n int) string {
	ws := make([]string, n)
	for i := range ws {
		// Squared uniform: a few words are common, most are rare.
		f := w.rng.Float64()
		ws[i] = noteWords[int(f*f*float64(len(noteWords)))]
	}
	return strings.Join(ws, " ")
}

// recording makes the i-th recording, with its start spread over the span
// in order (capture creates recordings as calls start).
func (w *world) recording(i, n int) Recording {
	w.seq++
	start := w.from.Add(time.Duration(float64(w.span) * (float64(i) + w.rng.Float64()) / float64(n))).Truncate(time.Millisecond)
	u := w.users[w.rng.IntN(len(w.users))]
	g := w.groups[(func() int {
		for j, g := range w.groups {
			if g.ID == u.Groups[0] {
				return j
			}
		}
		return 0
	})()]
	remote := w.remotes[w.rng.IntN(len(w.remotes))]
	dur := int64(math.Exp(w.rng.NormFloat64()*1.0+math.Log(120_000))) + 1000
	r := Recording{
		ID: w.v7(start.UnixMilli()), PBXCallID: fmt.Sprintf("pbx-%d", w.seq),
		SIPCallIDIngress: fmt.Sprintf("%016x@sbc.example.net", w.rng.Uint64()),
		Start:            start, Duration: dur,
		Direction: directionCodes[w.rng.IntN(3)], Source: SourceMirror, Technology: "SIP passive capture", Node: "node1",
		Codecs: []string{"PCMA"}, Channels: 2, Size: dur * 16,
		LocalParty:  LocalParty{User: u.ID, Username: u.Username, Number: fmt.Sprintf("+49 30 1234 %s", u.ID[1:]), Name: u.DisplayName},
		RemoteParty: remote, Group: g.ID, Tenant: g.Tenant, Status: StatusComplete, Tier: TierHot,
		File: FileInfo{Path: "2025/" + fmt.Sprint(w.seq), Format: FormatGrid, WrappedDEK: []byte("wrapped-dek-0123456789abcdef0123456789abcdef"), KeyTerm: 1},
	}
	if w.rng.IntN(2) == 0 {
		r.SIPCallIDEgress = fmt.Sprintf("%016x@pbx.example.net", w.rng.Uint64())
	}
	switch p := w.rng.IntN(200); {
	case p == 0:
		r.Status = StatusFailed
	case p == 1:
		r.Status = StatusRecovered
	}
	if w.rng.IntN(20) == 0 {
		r.Notes = []Note{{ID: "n1", Author: u.ID, Time: start.Add(time.Hour), Text: w.text(3 + w.rng.IntN(12))}}
	}
	if w.rng.IntN(10) == 0 {
		r.Rating = 1 + w.rng.IntN(5)
	}
	if w.rng.IntN(100) == 0 {
		r.Preserved = &Preservation{By: "u0000", At: start.Add(24 * time.Hour)}
	}
	if w.rng.IntN(10) == 0 {
		r.Bookmarks = []Bookmark{{ID: "b1", Type: bookmarkCodes[w.rng.IntN(len(bookmarkCodes))], OffsetMs: dur / 2, Time: start}}
	}
	if w.rng.IntN(5) == 0 {
		r.Category = categories[w.rng.IntN(len(categories))]
	}
	return r
}

// mutation returns a random change to an existing recording; some are
// deliberately invalid or aimed at deleted recordings, so that rejected
// commands are part of every log.
func (w *world) mutation() Command {
	id := w.ids[w.rng.IntN(len(w.ids))]
	at := w.from.Add(w.span + time.Duration(w.rng.IntN(1000))*time.Hour)
	switch w.rng.IntN(17) {
	case 0:
		d := int64(w.rng.IntN(600_000))
		return &UpdateRecording{ID: id, Status: StatusComplete, Duration: &d, SealHash: strings.Repeat("ab", 32)}
	case 1:
		return &SetLocation{ID: id, Tier: TierArchive, Path: "nas/" + id}
	case 2:
		return &AddNote{ID: id, Note: Note{ID: fmt.Sprintf("n%d", w.rng.IntN(4)), Author: "u0001", Time: at, Text: w.text(4)}}
	case 3:
		return &SetRating{ID: id, Rating: w.rng.IntN(7)} // 6 is invalid
	case 4:
		return &SetCategory{ID: id, Category: categories[w.rng.IntN(len(categories))]}
	case 5:
		return &SetCustomField{ID: id, Key: fmt.Sprintf("k%d", w.rng.IntN(3)), Value: w.text(1)}
	case 6:
		return &SetComplete{ID: id, Complete: w.rng.IntN(2) == 0}
	case 7:
		return &SetReviewMinutes{ID: id, Minutes: w.rng.IntN(30)}
	case 8:
		return &SetTranscript{ID: id, Transcript: w.text(20)}
	case 9:
		return &AddBookmark{ID: id, Bookmark: Bookmark{ID: fmt.Sprintf("b%d", w.rng.IntN(4)), Type: bookmarkCodes[w.rng.IntN(len(bookmarkCodes))], Time: at}}
	case 10:
		return &LinkRelated{ID: id, Other: w.ids[w.rng.IntN(len(w.ids))], Relation: relations[w.rng.IntN(3)]}
	case 11:
		return &Preserve{ID: id, By: "u0002", At: at, Until: at.Add(time.Duration(w.rng.IntN(3)) * 24 * time.Hour)}
	case 12:
		return &Release{ID: id}
	case 13:
		return &SetDeleteAfter{ID: id, DeleteAfter: at.Add(90 * 24 * time.Hour)}
	case 14:
		return &RewrapDEKs{Keys: []Rewrap{{ID: id, WrappedDEK: []byte(fmt.Sprintf("rewrapped-%d", w.rng.IntN(100))), KeyTerm: 2}}}
	case 15:
		return &DeleteRecording{ID: id, By: "u0000", At: at}
	default:
		r := w.remotes[w.rng.IntN(len(w.remotes))]
		return &UpdateRecording{ID: id, Status: Status("bogus"), Codecs: []string{r.Number}}
	}
}

// log returns setup commands, then n creations interleaved with mutations.
func (w *world) log(n int, mutationsPer float64) []Command {
	cmds := w.setup()
	for i := range n {
		r := w.recording(i, n)
		w.ids = append(w.ids, r.ID)
		cmds = append(cmds, &CreateRecording{Recording: r})
		for m := w.rng.Float64() * 2 * mutationsPer; m >= 1; m-- {
			cmds = append(cmds, w.mutation())
		}
	}
	return cmds
}

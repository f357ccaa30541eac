package captionstest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/ports"
)

// AskStore is what the ask feature needs of a store.
type AskStore interface {
	ports.CaptionStore
	ports.CaptionSearcher
	ports.CaptionVectorStore
}

// RunAsk runs the contract of ports.CaptionSearcher and
// ports.CaptionVectorStore as subtests of t; open returns a fresh store
// that lives as long as t.
func RunAsk(t *testing.T, open func(t *testing.T) AskStore) {
	ids := func(cs []ports.Caption) []string {
		out := make([]string, 0, len(cs))
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	all := ports.CaptionSearch{Device: "kit", Since: base.Add(-time.Hour), Until: base.Add(time.Hour), Limit: 50}

	t.Run("SearchRanksAnyWordWithinDeviceAndRange", func(t *testing.T) {
		s := open(t)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{
			Make(1, "kit", "s1", "a red mug of coffee on the desk"),
			Make(2, "kit", "s1", "coffee beans spill, coffee everywhere, a mug"),
			Make(3, "kit", "s1", "a plain white wall"),
			Make(4, "other", "s2", "coffee coffee coffee mug"),
			Make(7200, "kit", "s1", "coffee mug outside the range"),
		}))
		q := all
		q.Words = []string{"coffee", "mugs"} // stemmed: mugs finds mug
		got, err := s.SearchCaptions(t.Context(), q)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000002", "cap-0000001"}, ids(got), "more of the words ranks first; other devices and times never")

		q.Words = []string{"wall"}
		got, err = s.SearchCaptions(t.Context(), q)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000003"}, ids(got))

		q.Words = []string{`"`, "OR", "NEAR(", "*"} // never a syntax error
		_, err = s.SearchCaptions(t.Context(), q)
		require.NoError(t, err)
		q.Words = nil
		got, err = s.SearchCaptions(t.Context(), q)
		require.NoError(t, err)
		assert.Empty(t, got)
	})

	t.Run("SearchTiesNewestFirstAndLimit", func(t *testing.T) {
		s := open(t)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{
			Make(1, "kit", "s1", "keys on the table"), Make(2, "kit", "s1", "keys on the table"), Make(3, "kit", "s1", "keys on the table"),
		}))
		q := all
		q.Words, q.Limit = []string{"keys"}, 2
		got, err := s.SearchCaptions(t.Context(), q)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000003", "cap-0000002"}, ids(got))
	})

	t.Run("VectorsNearestWithinDeviceRangeAndModel", func(t *testing.T) {
		s := open(t)
		caps := []ports.Caption{
			Make(1, "kit", "s1", "east"), Make(2, "kit", "s1", "north"), Make(3, "kit", "s1", "north-east"),
			Make(4, "other", "s2", "north too"), Make(7200, "kit", "s1", "north, later"),
		}
		require.NoError(t, s.SaveCaptions(t.Context(), caps))
		missing, err := s.CaptionsWithoutVector(t.Context(), "m1", 10)
		require.NoError(t, err)
		assert.Len(t, missing, 5, "the back-fill sees every caption without a vector")

		vecs := map[string]ports.Vector{
			"cap-0000001": {1, 0}, "cap-0000002": {0, 3}, "cap-0000003": {1, 1},
			"cap-0000004": {0, 1}, "cap-0007200": {0, 1},
		}
		var batch []ports.CaptionVector
		for id, v := range vecs {
			batch = append(batch, ports.CaptionVector{CaptionID: id, Vector: v})
		}
		batch = append(batch, ports.CaptionVector{CaptionID: "never-stored", Vector: ports.Vector{1, 1}})
		require.NoError(t, s.SaveCaptionVectors(t.Context(), "m1", batch), "a caption gone meanwhile is skipped")
		require.NoError(t, s.SaveCaptionVectors(t.Context(), "m1", batch[:1]), "saving again replaces")

		missing, err = s.CaptionsWithoutVector(t.Context(), "m1", 10)
		require.NoError(t, err)
		assert.Empty(t, missing)
		missing, err = s.CaptionsWithoutVector(t.Context(), "m2", 2)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000001", "cap-0000002"}, ids(missing), "per model, oldest first, limited")

		q := ports.VectorSearch{Device: "kit", Since: all.Since, Until: all.Until, Model: "m1", Vector: ports.Vector{0, 2}, Limit: 10}
		got, err := s.NearestCaptions(t.Context(), q)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000002", "cap-0000003", "cap-0000001"}, ids(got), "cosine, not length; device and range kept")
		q.Limit = 1
		got, err = s.NearestCaptions(t.Context(), q)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000002"}, ids(got))
		q.Model = "m2"
		got, err = s.NearestCaptions(t.Context(), q)
		require.NoError(t, err)
		assert.Empty(t, got, "another model's vectors are never compared")
	})

	t.Run("VectorsGoWithTheirCaption", func(t *testing.T) {
		s := open(t)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{Make(1, "kit", "s1", "old"), Make(100, "kit", "s1", "new")}))
		require.NoError(t, s.SaveCaptionVectors(t.Context(), "m1", []ports.CaptionVector{
			{CaptionID: "cap-0000001", Vector: ports.Vector{1}}, {CaptionID: "cap-0000100", Vector: ports.Vector{1}}}))
		n, err := s.DeleteCaptionsBefore(t.Context(), base.Add(50*time.Second), 10)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		got, err := s.NearestCaptions(t.Context(), ports.VectorSearch{Device: "kit", Since: all.Since, Until: all.Until,
			Model: "m1", Vector: ports.Vector{1}, Limit: 10})
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000100"}, ids(got))
		// Stored again, the deleted caption has no vector left behind.
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{Make(1, "kit", "s1", "old")}))
		missing, err := s.CaptionsWithoutVector(t.Context(), "m1", 10)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000001"}, ids(missing))
	})
}

"""gold.sticker_results: results per sticker of every known segment (every sticker, even without responses).

Type rules (DESIGN §5; silver already keeps one response per user and sticker):
- poll / quiz: option_counts aligned with options (zeros when none); option_pcts each count / votes, every
  element null when there are no votes (never a fake even split); quiz correct_rate = share of votes on
  correct_index (null when none). Votes whose option_index is outside options are not counted.
- slider: slider_mean (of the values at 10 decimals, summed exactly) and a 10-bin histogram [0,0.1), ...,
  [0.8,0.9), [0.9,1.0] (1.0 in the last bin); zeros / null mean when nobody answered; both null for other types.
- question_responses / countdown_optins: responding users; add_yours_reshares / taps (mention, location,
  hashtag, link): deduplicated interactions.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import spark_io
from jobs.gold import activity
from jobs.gold.output import write_gold
from jobs.horizon import Horizon
from storylake.settings import Settings

NAME = "sticker_results"
CHOICE_TYPES = ("poll", "quiz")
TAP_TYPES = ("mention", "location", "hashtag", "link")
SLIDER_BINS = 10
EXACT_VALUE = "decimal(20,10)"  # slider values summed exactly (order-independent mean)


def slider_bin(value: Column) -> Column:
    """0..9: the number of bin edges 0.1..0.9 at or below the value (so 1.0 falls in the last bin)."""
    edges = [F.when(value >= k / SLIDER_BINS, 1).otherwise(0) for k in range(1, SLIDER_BINS)]
    total = edges[0]
    for e in edges[1:]:
        total = total + e
    return total


def sticker_results(segments: DataFrame, sticker_responses: DataFrame, as_of: datetime) -> DataFrame:
    """One row per sticker of segments created before as_of, from responses strictly before as_of."""
    segs = activity.known_segments(segments, as_of)
    stickers = segs.select("segment_id", "author_id", "created_at", F.explode("stickers").alias("s")).select(
        "segment_id",
        "author_id",
        F.col("created_at").alias("segment_created_at"),
        F.col("s.sticker_id").alias("sticker_id"),
        F.col("s.type").alias("sticker_type"),
        F.col("s.options").alias("options"),
        F.col("s.correct_index").alias("correct_index"),
    )
    responses = sticker_responses.filter(F.col("responded_at") < activity.instant(as_of))
    per_sticker = responses.groupBy("sticker_id").agg(
        F.countDistinct("user_id").alias("_responders"),
        F.sum("interactions").cast("bigint").alias("_interactions"),
        # an exact sum (values at 10 decimals): the mean does not depend on the order rows arrive in, so an
        # incremental run and a full refresh agree to the last bit
        F.avg(F.col("value").cast(EXACT_VALUE)).cast("double").alias("_value_mean"),
        F.array(*[F.count(F.when(slider_bin(F.col("value")) == b, 1)) for b in range(SLIDER_BINS)]).alias(
            "_value_bins"
        ),
    )
    # Votes per option position of every choice sticker (0 when none; votes outside options match no position),
    # gathered in position order. No map lookups: Sail's element_at on a map column returned another row's
    # values at scale (about 1 sticker in 8 at 10M views, varying from run to run).
    votes = responses.filter(F.col("option_index").isNotNull()).groupBy(
        F.col("sticker_id").alias("_v_sid"), F.col("option_index").alias("_v_pos")
    ).agg(F.count(F.lit(1)).alias("_n"))
    positions = stickers.filter(F.col("sticker_type").isin(list(CHOICE_TYPES))).select(
        "sticker_id", "correct_index", F.posexplode("options").alias("_pos", "_option")
    )
    zero = F.lit(0).cast("bigint")
    cells = positions.join(
        votes, (F.col("sticker_id") == F.col("_v_sid")) & (F.col("_pos") == F.col("_v_pos")), "left"
    ).withColumn("_n", F.coalesce(F.col("_n"), zero))
    choices = cells.groupBy(F.col("sticker_id").alias("_c_sid")).agg(
        F.sort_array(F.collect_list(F.struct("_pos", "_n"))).alias("_cells"),
        F.sum("_n").cast("bigint").alias("_votes_total"),
        F.sum(F.when(F.col("_pos") == F.col("correct_index"), F.col("_n"))).cast("bigint").alias("_correct_votes"),
    )
    df = stickers.join(per_sticker, "sticker_id", "left").join(
        choices, F.col("sticker_id") == F.col("_c_sid"), "left"
    )

    sticker_type = F.col("sticker_type")
    is_choice = sticker_type.isin(list(CHOICE_TYPES))
    is_slider = sticker_type == "slider"
    responders = F.coalesce(F.col("_responders"), zero)
    interactions = F.coalesce(F.col("_interactions"), zero)
    no_counts = F.array().cast("array<bigint>")  # a choice sticker without options
    counts = F.coalesce(F.transform("_cells", lambda cell: cell.getField("_n")), no_counts)
    df = df.withColumn("option_counts", F.when(is_choice, counts)).withColumn(
        "_votes_total", F.coalesce(F.col("_votes_total"), zero)
    )
    correct_votes = F.coalesce(F.col("_correct_votes"), zero)
    return df.select(
        "sticker_id",
        "segment_id",
        "author_id",
        "sticker_type",
        responders.alias("responses"),
        F.when(is_choice, F.col("options")).alias("options"),
        "option_counts",
        F.transform("option_counts", lambda n: activity.ratio(n, F.col("_votes_total"))).alias("option_pcts"),
        F.when(sticker_type == "quiz", F.col("correct_index")).alias("correct_index"),
        F.when(sticker_type == "quiz", activity.ratio(correct_votes, F.col("_votes_total"))).alias("correct_rate"),
        F.when(is_slider, F.col("_value_mean")).alias("slider_mean"),
        F.when(is_slider, F.coalesce(F.col("_value_bins"), F.array_repeat(zero, SLIDER_BINS))).alias(
            "slider_histogram"
        ),
        F.when(sticker_type == "question", responders).otherwise(zero).alias("question_responses"),
        F.when(sticker_type == "countdown", responders).otherwise(zero).alias("countdown_optins"),
        F.when(sticker_type == "add_yours", interactions).otherwise(zero).alias("add_yours_reshares"),
        F.when(sticker_type.isin(list(TAP_TYPES)), interactions).otherwise(zero).alias("taps"),
        activity.instant(as_of).alias("as_of"),
        "segment_created_at",
    )


def run(spark: SparkSession, settings: Settings, horizon: Horizon, segments: DataFrame | None = None
        ) -> dict[str, int]:
    """The results of the stickers on segments created in the gold horizon (a sticker depends on its segment only);
    with `segments` (jobs.gold.touched) only the touched segments' stickers are recomputed and the others' results
    kept as the last good run left them."""
    from jobs.gold import touched as touch

    if touch.unchanged(settings, NAME, segments):
        return {}
    # without kept rows (mine None) every sticker of the horizon is recomputed
    kept, mine = touch.keep(spark, settings, NAME, horizon.admits("segment_created_at", gold=True), segments,
                            "segment_id")
    rows = touch.of_keys(spark_io.read_table(spark, settings, "silver", "segments").filter(
        horizon.admits("created_at", gold=True)), mine, "segment_id")
    responses = touch.of_keys(spark_io.read_table(spark, settings, "silver", "sticker_responses").filter(
        horizon.admits("segment_created_at", gold=True)), mine, "segment_id")
    return write_gold(touch.with_kept(sticker_results(rows, responses, horizon.as_of), kept), settings, NAME,
                      horizon.where("segment_created_at", gold=True))

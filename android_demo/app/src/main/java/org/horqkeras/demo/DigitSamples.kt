package org.horqkeras.demo

import android.content.Context
import org.json.JSONArray
import org.json.JSONObject

/**
 * The MNIST test digits that export_assets.py bundled: assets/digits.bin holds [count]
 * images of [height] x [width] uint8 pixels (row-major, no header); assets/digits.json their
 * true [labels] and the [hostPredictions] of LCE's interpreter on the exporting machine.
 */
class DigitSamples(context: Context) {
    val count: Int
    val height: Int
    val width: Int
    val labels: IntArray
    val hostPredictions: IntArray
    private val pixels: ByteArray

    init {
        val meta = JSONObject(context.assets.open(INFO_ASSET).bufferedReader().use { it.readText() })
        count = meta.getInt("count")
        height = meta.getInt("height")
        width = meta.getInt("width")
        labels = meta.getJSONArray("labels").toIntArray()
        hostPredictions = meta.getJSONArray("host_predictions").toIntArray()
        pixels = context.assets.open(PIXELS_ASSET).use { it.readBytes() }
        require(pixels.size == count * height * width) {
            "$PIXELS_ASSET has ${pixels.size} bytes; $INFO_ASSET describes ${count * height * width}"
        }
    }

    /** The pixels of digit [index]. */
    fun image(index: Int): ByteArray = pixels.copyOfRange(index * height * width, (index + 1) * height * width)

    private fun JSONArray.toIntArray() = IntArray(length()) { getInt(it) }

    companion object {
        const val PIXELS_ASSET = "digits.bin"
        const val INFO_ASSET = "digits.json"
    }
}

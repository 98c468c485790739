package org.horqkeras.demo

import android.content.Context
import org.json.JSONObject
import java.util.Locale

/**
 * What assets/model_info.json says about the model (horq_keras.bench.ops.summarize_ops):
 * how many of its convolution / matrix-product operators are LCE binary convolutions, and
 * how many of all its operators are LCE operators.
 */
class ModelInfo(
    private val binaryConvs: Int,
    private val productOps: Int,
    private val binaryConvShare: Double,
    private val binaryOps: Int,
    private val ops: Int,
    private val sizeBytes: Int,
) {
    fun describe(): String = String.format(
        Locale.US,
        "Binary convolutions: %d of %d product ops (%.0f%%)\nLCE operators: %d of %d; model %.1f kB",
        binaryConvs, productOps, 100 * binaryConvShare, binaryOps, ops, sizeBytes / 1024.0,
    )

    companion object {
        const val ASSET = "model_info.json"

        fun load(context: Context): ModelInfo {
            val json = JSONObject(context.assets.open(ASSET).bufferedReader().use { it.readText() })
            return ModelInfo(
                binaryConvs = json.getInt("num_binary_convs"),
                productOps = json.getInt("num_product_ops"),
                binaryConvShare = json.getDouble("binary_conv_share"),
                binaryOps = json.getInt("num_binary_ops"),
                ops = json.getInt("num_ops"),
                sizeBytes = json.getInt("size_bytes"),
            )
        }
    }
}

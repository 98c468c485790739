plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.horqkeras.demo"
    compileSdk = 34

    defaultConfig {
        applicationId = "org.horqkeras.demo"
        minSdk = 23
        targetSdk = 34
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            // LCE's AAR ships native libraries for arm64-v8a, x86 and x86_64 (no 32-bit
            // ARM): phones are arm64-v8a, the emulator x86_64.
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }

    // The model is memory-mapped straight from the APK: it must be stored uncompressed.
    androidResources {
        noCompress += "tflite"
    }
}

dependencies {
    // LCE's Android library: TFLite's Java API (org.tensorflow.lite.Interpreter) with LCE's
    // binary operators built into its native library. It is a release asset of
    // larq/compute-engine, not on Maven: put lce-lite-v<version>.aar into app/libs/ (README).
    // Do not add org.tensorflow:tensorflow-lite as well: its classes would clash.
    implementation(fileTree(mapOf("dir" to "libs", "include" to listOf("lce-lite-*.aar"))))

    implementation("androidx.core:core-ktx:1.13.1")
    implementation("androidx.appcompat:appcompat:1.7.0")
}
